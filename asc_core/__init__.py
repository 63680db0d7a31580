"""The TensorFlow-free bottom of keras-asc, shared by ``tfrecords_builder`` and ``keras_asc``.

It holds what both sides need and nothing that imports TensorFlow or Keras: the label
vocabularies (:mod:`asc_core.vocab`), the user-error type and CLI wrapper
(:mod:`asc_core.errors`), audio reading (:mod:`asc_core.audio`), the record encoders of the
TFRecord schema (:mod:`asc_core.example`, over the wire format of :mod:`asc_core.protobuf`),
TFRecord framing and shard checks (:mod:`asc_core.tfrecord`), writing shards
(:mod:`asc_core.tfrecord_io`) into a build's output folder (:mod:`asc_core.writer`: atomic
replace, ``info.json`` with the format version), the microphone table
(:mod:`asc_core.microphones`), atomic file writes with the one JSON policy
(:mod:`asc_core.files`), resumable downloads (:mod:`asc_core.download`) and progress bars
(:mod:`asc_core.progress`). ``tfrecords_builder`` and ``keras_asc`` both import it; it imports
neither, and neither of them imports the other (``tests/test_architecture.py``).
"""
