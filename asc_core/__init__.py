"""The TensorFlow-free bottom of keras-asc, shared by ``tfrecords_builder`` and ``keras_asc``.

It holds what both sides need and nothing that imports TensorFlow or Keras: the label
vocabularies (:mod:`asc_core.vocab`), the user-error type and CLI wrapper
(:mod:`asc_core.errors`) and audio reading (:mod:`asc_core.audio`). ``tfrecords_builder``
and ``keras_asc`` both import it; neither imports the other's internals through it.
"""
