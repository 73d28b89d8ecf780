"""The inference wing: a trained model labelling raw text (predict's Labeler), on CPUs through ONNX Runtime
(onnx_runtime) as the model's own validation decided (cpu_path), shown as text, Markdown or JSON (render), and
logged to MLflow as a pyfunc that labels raw text, on a Spark cluster too (pyfunc)."""
