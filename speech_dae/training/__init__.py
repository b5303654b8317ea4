"""Training components of stage 03 (the stage entry is :func:`speech_dae.stages.train.train`).

Each module imports only those above it in this list:

- :mod:`.batches`: batch plans over memory-mapped stage-02 frames, streamed through ``tf.data``
- :mod:`.examples`: examples cut from audio (dynamic mixing, the spectral losses' targets)
- :mod:`.distribute`: ``tf.distribute`` strategies and the ``TF_CONFIG`` cluster
- :mod:`.callbacks`: time budget, epoch timer, backup and restore, TensorBoard extras
- :mod:`.trainer`: :func:`~.trainer.fit_run` builds, fits and writes ``models/<run>/``

Importing the package imports no framework.
"""
