"""Triplet loss and mining by hand, training on toy people, and a trained head in use."""
import numpy as np
import pytest
import torch

from facecluster.training.triplet import TripletTrainer, pk_batch, save_head, triplet_loss
from facecluster.udfs.head import HeadEmbedder, TripletHead, load_head


def test_batch_hard_loss_by_hand():
    # a0, a1 (person 0) and b0 (person 1) on a line of unit vectors (angles)
    angles = torch.tensor([0.0, 0.5, 0.7])
    X = torch.stack([torch.cos(angles), torch.sin(angles)], dim=1)
    labels = torch.tensor([0, 0, 1])
    d2 = lambda a, b: float(2 - 2 * torch.cos(angles[a] - angles[b]))  # noqa: E731
    loss, active = triplet_loss(X, labels, margin=0.2, mining="batch_hard")
    # anchors a0 and a1 (b0 has no positive)
    expected = [max(0, d2(0, 1) - d2(0, 2) + 0.2), max(0, d2(1, 0) - d2(1, 2) + 0.2)]
    assert float(loss) == pytest.approx(np.mean(expected), abs=1e-6)
    assert active == 0.5  # a0 already satisfies the margin (0.245 + 0.2 < 0.470), a1 does not


def test_semi_hard_picks_the_nearest_negative_beyond_the_positive():
    angles = torch.tensor([0.0, 0.3, 0.2, 0.5, 2.0])
    X = torch.stack([torch.cos(angles), torch.sin(angles)], dim=1)
    labels = torch.tensor([0, 0, 1, 1, 2])
    loss, _ = triplet_loss(X, labels, margin=0.2, mining="semi_hard")
    d2 = lambda a, b: float(2 - 2 * torch.cos(angles[a] - angles[b]))  # noqa: E731
    terms = []
    for a, p in [(0, 1), (1, 0), (2, 3), (3, 2)]:
        negatives = [n for n in range(5) if labels[n] != labels[a]]
        semi = [d2(a, n) for n in negatives if d2(a, p) < d2(a, n) < d2(a, p) + 0.2]
        chosen = min(semi) if semi else max(d2(a, n) for n in negatives)
        terms.append(max(0.0, d2(a, p) - chosen + 0.2))
    assert float(loss) == pytest.approx(np.mean(terms), abs=1e-6)


def test_pk_batch_shape():
    rng = np.random.default_rng(0)
    rows = pk_batch([np.array([0, 1]), np.array([2, 3, 4]), np.array([5, 6])], people=2, faces=4, rng=rng)
    assert len(rows) == 8


def nearest_is_same(X: np.ndarray, people: np.ndarray) -> float:
    similarity = X @ X.T
    np.fill_diagonal(similarity, -np.inf)
    return float((people[similarity.argmax(axis=1)] == people).mean())


@pytest.mark.parametrize("mining", ["batch_hard", "semi_hard"])
def test_training_separates_toy_people(mining):
    # people differ in 4 of 8 dimensions; the other 4 are noise a linear head can learn to ignore
    rng = np.random.default_rng(1)
    centres = np.hstack([rng.normal(size=(30, 4)), np.zeros((30, 4))])
    people = np.repeat(np.arange(30), 6)
    X = centres[people] + rng.normal(scale=0.3, size=(len(people), 8))
    X = (X / np.linalg.norm(X, axis=1, keepdims=True)).astype(np.float32)
    log = []
    trainer = TripletTrainer(margin=0.2, mining=mining, people_per_batch=10, faces_per_person=4, steps=300,
                             learning_rate=0.01, log=log.append, log_every=100).fit(X, people)
    with torch.no_grad():
        after = trainer.head_(torch.from_numpy(X))
    # the hardest triplet of every face, over all faces (a measure neither mining chose its batches by)
    hardest_before, _ = triplet_loss(torch.from_numpy(X), torch.from_numpy(people), 0.2, "batch_hard")
    hardest_after, _ = triplet_loss(after, torch.from_numpy(people), 0.2, "batch_hard")
    assert float(hardest_after) < 0.8 * float(hardest_before)
    assert nearest_is_same(after.numpy(), people) > nearest_is_same(X, people)
    assert len(log) == 4 and "active triplets" in log[0]
    assert all(0.0 <= active <= 1.0 for _, _, active in trainer.history_)


def test_head_starts_as_identity_and_round_trips(tmp_path):
    head = TripletHead(4)
    X = np.eye(4, dtype=np.float32)
    with torch.no_grad():
        assert torch.allclose(head(torch.from_numpy(X)), torch.from_numpy(X))
        head.linear.weight.mul_(2).add_(0.1)
    model_id, path = save_head(head, "dlib-resnet-v1", tmp_path, {"margin": 0.2})
    assert model_id.startswith("dlib-resnet-v1+triplet-") and path.name == f"{model_id}.pt"
    loaded, saved = load_head(path)
    with torch.no_grad():
        assert torch.allclose(loaded(torch.from_numpy(X)), head(torch.from_numpy(X)))

    class Base:
        model_id = "facenet-vggface2"
    with pytest.raises(ValueError, match="trained on dlib-resnet-v1"):
        HeadEmbedder(Base(), path)


@pytest.mark.slow
def test_train_command_saves_a_head_that_verify_then_uses(people_folders, tmp_path, capsys):
    import json

    from facecluster.cli import main
    from tests.conftest import ARCHIVE

    assert main(["train", "--images", str(people_folders), "--save", str(tmp_path / "heads"), "--embedder", "dlib",
                 "--set", "train.steps=30", "--set", "train.people_per_batch=4",
                 "--calibration-share", "0.4"]) == 0
    out = capsys.readouterr().out
    head = next((tmp_path / "heads").glob("*.pt"))
    assert f"use it with: --set embed.head={head}" in out
    model_id = head.stem
    assert (tmp_path / "heads" / f"{model_id}.json").is_file()  # its own calibration, beside it
    assert main(["verify", str(ARCHIVE / "2019_birthday" / "img44.jpg"), str(ARCHIVE / "2021_wedding" / "img43.jpg"),
                 "--json", "--embedder", "dlib", "--set", f"embed.head={head}"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["model"] == model_id and 0.0 <= result["probability"] <= 1.0


@pytest.mark.slow
def test_finetune_trains_facenets_last_layers_and_verify_uses_them(people_folders, tmp_path, capsys):
    """Plumbing on random weights (this machine has neither a GPU nor FaceNet's weights): the
    network's last block learns, the rest stays, and the result embeds under its own model id."""
    import json

    from facenet_pytorch import InceptionResnetV1

    from facecluster.cli import main
    from tests.conftest import ARCHIVE

    torch.manual_seed(0)
    random_weights = tmp_path / "random-facenet.pt"
    torch.save(InceptionResnetV1(pretrained=None, classify=False).state_dict(), random_weights)
    common = ["--embedder", "facenet", "--set", "embed.device=cpu"]
    assert main(["train", "--finetune", "--images", str(people_folders), "--save", str(tmp_path / "tuned"), *common,
                 "--set", f"embed.facenet_weights={random_weights}", "--set", "train.steps=2",
                 "--set", "train.people_per_batch=3", "--set", "train.faces_per_person=2",
                 "--calibration-share", "0.4"]) == 0
    assert "--embedder facenet --set embed.facenet_weights=" in capsys.readouterr().out
    tuned = next((tmp_path / "tuned").glob("facenet-vggface2+finetune-*.pt"))
    before = torch.load(random_weights, weights_only=True)
    after = torch.load(tuned, weights_only=True)["state_dict"]
    assert not torch.equal(before["last_linear.weight"], after["last_linear.weight"])
    assert torch.equal(before["conv2d_1a.conv.weight"], after["conv2d_1a.conv.weight"])
    assert torch.equal(before["last_bn.running_mean"], after["last_bn.running_mean"])  # statistics kept
    assert main(["verify", str(ARCHIVE / "2019_birthday" / "img44.jpg"), str(ARCHIVE / "2021_wedding" / "img43.jpg"),
                 "--json", *common, "--set", f"embed.facenet_weights={tuned}"]) == 0
    assert json.loads(capsys.readouterr().out)["model"] == tuned.stem
