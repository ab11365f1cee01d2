"""deceptionlab: how misaligned finetuning, mixed-in misaligned data and biased users make an LLM less honest."""

import os

# Offline by design: no usage telemetry from the Hugging Face hub client or MLflow (models load from
# local folders with local_files_only). setdefault, so a user's own setting wins.
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
