"""The served world's MLflow runs as an MLflow user sees them: named, with inputs and cards."""

from __future__ import annotations

from mlflow import MlflowClient

from .conftest import World


def test_training_and_uplift_runs_are_named_with_the_log_as_input(world: World) -> None:
    client = MlflowClient(world.tracking_uri)
    churn = client.get_model_version_by_alias("lifecycle-churn", "champion")
    run = client.get_run(churn.run_id)
    assert run.info.run_name.startswith("train-sim-hybrid-eval-")
    (logged,) = run.inputs.dataset_inputs
    tags = {t.key: t.value for t in logged.tags}
    assert logged.dataset.name == "sim" and tags["mlflow.data.context"] == "training"
    assert tags["fingerprint"].removeprefix("sha256:").startswith(logged.dataset.digest)
    assert tags["fingerprint"] == run.data.tags["lifecycle.data_fingerprint"]

    uplift = client.get_model_version_by_alias("lifecycle-uplift", "champion")
    uplift_run = client.get_run(uplift.run_id)
    assert uplift_run.info.run_name == "uplift-sim-30d"
    assert uplift_run.inputs.dataset_inputs[0].dataset.name == "sim"
    card = uplift.description
    assert card.startswith(f"# Model card: lifecycle-uplift (version {uplift.version})")
    assert "## Per offer" in card and "| discount_10 |" in card and " pp |" in card
