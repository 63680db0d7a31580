"""Dataset → TFRecord builders for TAU22 and the DIR sets (``python -m tfrecords_builder -h``)."""

BUILDER_VERSION = "1.1.0"
