"""The TensorFlow-free bottom of keras-asc, shared by ``tfrecords_builder`` and ``keras_asc``.

It holds what both sides need and nothing that imports TensorFlow or Keras: the label
vocabularies (:mod:`asc_core.vocab`), the user-error type and CLI wrapper
(:mod:`asc_core.errors`), audio reading (:mod:`asc_core.audio`), the record encoders of the
TFRecord schema (:mod:`asc_core.example`), TFRecord framing and shard checks
(:mod:`asc_core.tfrecord`), atomic file writes with the one JSON policy
(:mod:`asc_core.files`) and resumable downloads (:mod:`asc_core.download`). ``tfrecords_builder``
and ``keras_asc`` both import it; it imports neither, and the builders import no ``keras_asc``
(``tests/test_architecture.py``).
"""
