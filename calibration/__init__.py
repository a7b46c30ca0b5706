"""Recording -> aligned focal stacks: event->RGB geometry, time -> focal power -> focal index (issue 5)."""
