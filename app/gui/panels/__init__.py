"""Dockable control panels; each talks to the :class:`~app.gui.controller.RigController` only."""
