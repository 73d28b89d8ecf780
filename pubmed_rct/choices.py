"""Every word a setting may take, defined once: params.yaml's types are built from these, and the code that acts
on a setting checks against the same tuple."""

CONTEXTS = ("none", "abstract")               # context: each sentence alone | the whole abstract
NUMBER_FORMS = ("digits", "@")                # numbers as the training data writes them
DOWNSAMPLING = ("minority", "cap")            # downsample.strategy
CLASS_WEIGHTS = ("none", "balanced", "sqrt")  # train.class_weights
TRAIN_PRECISIONS = ("auto", "bf16", "fp32")   # train.precision
COMPILE = ("auto", "true", "false", "reduce-overhead")  # train.compile
SWITCH = ("auto", "true", "false")            # train.cuda_graphs
ONNX_PRECISIONS = ("int8", "fp32")            # the ONNX Runtime files a model folder may hold
EXPORTS = (*ONNX_PRECISIONS, "none")          # export.onnx
BACKENDS = ("auto", "onnx", "torch")          # --backend of predict, serve and label
SPARK_LOG_LEVELS = ("OFF", "ERROR", "WARN", "INFO")  # label --spark-log: Spark's own console log
