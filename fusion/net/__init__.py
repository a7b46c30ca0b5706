"""The learned fusion method: event-guided focal-index network (model), its data, losses, training and the
``net`` method of the fusion engine (imported lazily by ``fusion.engine``; needs torch)."""
