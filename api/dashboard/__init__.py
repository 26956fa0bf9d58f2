"""The supervision dashboard: one page and its assets, all served from this package."""
