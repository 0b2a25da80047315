"""Rolling-window feature math: one definition, used online and offline."""
