"""Table 4 transcription: shape and the paper's own summary statements hold on the data."""
from caffe_cae.experiments import paper_results as pr


def test_every_autoencoder_row_has_three_runs_of_train_and_test_pairs():
    for model, rows in pr.TABLE4.items():
        for dims, row in rows.items():
            assert len(row["runs"]) == 3
            if model != "siamese":
                for train, test in row["runs"]:
                    assert len(train) == 2 and len(test) == 2
                    assert train[0] > train[1] > 0      # SCE > Euclidean


def test_the_papers_findings_hold_in_the_transcribed_table():
    # Model 3: lowest loss, worst classification; Model 4: best MLP error among the CAEs at 30-D.
    cae = ["model1", "model2", "model3", "model4", "model5"]
    for dims in (2, 10, 30):
        losses = {m: pr.mean_losses(m, dims)[1][0] for m in cae}
        assert min(losses, key=losses.get) == "model3"
    assert max(cae, key=lambda m: pr.TABLE4[m][10]["mlp"]) == "model3"
    assert min(cae, key=lambda m: pr.TABLE4[m][30]["mlp"]) == "model4"
    assert pr.TABLE4["model4"][30]["mlp"] == 2.19 and pr.TABLE4["model3"][10]["mlp"] == 8.75
    assert set(pr.MODEL_TITLES) >= set(pr.TABLE4)
