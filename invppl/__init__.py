"""invppl: invariance-aware generative models in the NumPyro idiom.

Layers (imports point downward only)::

    cli, tutorials, benchmarks          what users run
    diagnostics, metrics, plots         judging a fit
    infer                               fitting: SVI loops, objectives, checkpoints
    models                              complete model + guide pairs
    distributions, nn, transforms       building blocks
    datasets                            data with ground truth where known
"""

__version__ = "0.1.0"
