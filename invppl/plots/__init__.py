"""Pictures of images, transformations and fits (matplotlib, no display needed)."""

from invppl.plots.images import image_grid, save_figure, transformation_gallery

__all__ = ["image_grid", "save_figure", "transformation_gallery"]
