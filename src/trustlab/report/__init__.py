"""Run directories and the HTML report rendered from whatever views are registered."""
