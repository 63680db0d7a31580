"""Fixed label vocabularies shared by the builders, the input pipeline and the reports.

The orders are part of the TFRecord format (``docs/data_format.md``): a stored ``scene_id``
or ``device_id`` indexes these tuples, so they must never be reordered.
"""

# DCASE / CPJKU order: alphabetical, as sklearn's LabelEncoder fits it on meta.csv.
SCENES = (
    "airport",
    "bus",
    "metro",
    "metro_station",
    "park",
    "public_square",
    "shopping_mall",
    "street_pedestrian",
    "street_traffic",
    "tram",
)

# TAU22 development devices, in CPJKU's encoding a->0 ... s6->8.
DEVICES = ("a", "b", "c", "s1", "s2", "s3", "s4", "s5", "s6")

# Device families as reported in the paper's Table 3 (CPJKU calls "simulated" "seen").
DEVICE_GROUPS = {
    "real": ("a", "b", "c"),
    "simulated": ("s1", "s2", "s3"),
    "unseen": ("s4", "s5", "s6"),
}

# Devices that appear in fold1_train (s4-s6 are evaluation-only).
TRAIN_DEVICES = ("a", "b", "c", "s1", "s2", "s3")

SAMPLE_RATE = 32000

# Columns of a microphone table (``asc_core/data/surrey_microphones.csv``): what the
# multi-dirs builder reads and the DIR generator writes for its training set.
MICROPHONE_COLUMNS = (
    "config",
    "microphone",
    "variant",
    "model",
    "pattern",
    "transducer",
    "diaphragm_size",
    "diaphragm_count",
    "address",
    "unverified",
    "notes",
)
