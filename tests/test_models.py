"""The face models on real photos. dlib's ResNet has real weights (they ship in a package);
FaceNet runs on random weights here only to test plumbing, never to judge quality."""
import numpy as np
import pytest
import torch

from tests import photos
from tests.conftest import ARCHIVE
from facecluster.recognition.thresholds import same_person_threshold
from facecluster.udfs import facenet
from facecluster.udfs.decode import decode_photo, downscale
from facecluster.udfs.detector import FaceDetector
from facecluster.udfs.inference import for_cpu_inference

LIMIT = 120_000_000


@pytest.fixture(scope="module")
def detector():
    torch.set_num_threads(1)
    return FaceDetector(torch.device("cpu"), max_canvas=1024, min_face_size=20,
                        thresholds=[0.6, 0.7, 0.7], min_score=0.9)


@pytest.fixture(scope="module")
def dlib_embedder():
    from facecluster.udfs.dlib_resnet import DlibEmbedder

    return DlibEmbedder()


def faces_of(detector, path):
    photo = decode_photo(path.read_bytes(), LIMIT)
    return photo, detector.detect([photo.pixels])[0]


def test_one_face_in_a_portrait_and_none_among_dogs(detector):
    photo, faces = faces_of(detector, ARCHIVE / "2019_birthday" / "img5.jpg")
    assert len(faces) == 1
    x1, y1, x2, y2 = faces[0].box
    assert 0 <= x1 < x2 <= photo.width and 0 <= y1 < y2 <= photo.height
    assert faces[0].landmarks.shape == (5, 2)
    # landmarks inside the box, left eye left of right eye, eyes above the mouth
    marks = faces[0].landmarks
    assert ((marks[:, 0] >= x1) & (marks[:, 0] <= x2) & (marks[:, 1] >= y1) & (marks[:, 1] <= y2)).all()
    assert marks[0, 0] < marks[1, 0] and marks[0, 1] < marks[3, 1]
    assert faces_of(detector, ARCHIVE / "2019_birthday" / "dogs.jpg")[1] == []


def test_several_faces_in_a_group_photo(detector):
    _, faces = faces_of(detector, ARCHIVE / "2021_wedding" / "selfie-many-people.jpg")
    assert len(faces) >= 3


def test_the_channels_last_detector_finds_what_facenet_pytorchs_mtcnn_finds(detector):
    """The detector turns MTCNN's networks to channels-last on a CPU, for speed only: the same
    faces, boxes and landmarks as facenet-pytorch's MTCNN as it ships."""
    from facenet_pytorch import MTCNN

    plain = MTCNN(keep_all=True, device=torch.device("cpu"), min_face_size=20, thresholds=[0.6, 0.7, 0.7],
                  select_largest=False, post_process=False)
    assert detector.mtcnn.pnet.conv1.weight.is_contiguous(memory_format=torch.channels_last)
    paths = [ARCHIVE / "2021_wedding" / "selfie-many-people.jpg", *sorted(ARCHIVE.glob("2019_birthday/*.jpg"))]
    found = 0
    for path in paths:
        canvas = downscale(decode_photo(path.read_bytes(), LIMIT).pixels, 1024)[0][None]
        (boxes, scores, points), (plain_boxes, plain_scores, plain_points) = (
            net.detect(canvas, landmarks=True) for net in (detector.mtcnn, plain))
        assert (boxes[0] is None) == (plain_boxes[0] is None), path.name
        if boxes[0] is not None:
            assert np.allclose(np.stack(boxes[0]).astype(float), np.stack(plain_boxes[0]).astype(float), atol=1e-2)
            assert np.allclose(np.stack(points[0]).astype(float), np.stack(plain_points[0]).astype(float), atol=1e-2)
            found += len(boxes[0])
    assert found >= 10


def test_boxes_come_out_in_original_pixels_whatever_the_canvas(detector):
    path = ARCHIVE / "2023_holiday" / "img30.jpg"  # 1453x1004
    photo = decode_photo(path.read_bytes(), LIMIT)
    big = detector.detect([photo.pixels])[0][0].box
    small_detector = FaceDetector(torch.device("cpu"), max_canvas=400, min_face_size=20,
                                  thresholds=[0.6, 0.7, 0.7], min_score=0.9)
    small = small_detector.detect([photo.pixels])[0][0].box
    size = big[2] - big[0]
    assert np.abs(big - small).max() < 0.1 * size


def test_box_of_an_exif_rotated_photo_is_in_the_upright_frame(detector):
    upright = decode_photo(photos.PORTRAIT.read_bytes(), LIMIT)
    rotated = decode_photo(photos.exif_rotated_jpeg(), LIMIT)
    a = detector.detect([upright.pixels])[0][0].box
    b = detector.detect([rotated.pixels])[0][0].box
    assert np.abs(a - b).max() < 0.1 * (a[2] - a[0])


def test_dlib_puts_one_persons_faces_closer_than_strangers(detector, dlib_embedder):
    def embedding(relative):
        photo, faces = faces_of(detector, ARCHIVE / relative)
        return dlib_embedder.embed([dlib_embedder.chip(photo.pixels, faces[0].box, faces[0].landmarks)])[0]

    # person_00 in three albums, person_01 and person_03 once each (samples/labels.csv)
    same = [embedding("2019_birthday/img5.jpg"), embedding("2021_wedding/img6.jpg"), embedding("2023_holiday/img10.jpg")]
    others = [embedding("2019_birthday/img44.jpg"), embedding("2021_wedding/img12.jpg")]
    for vector in same + others:
        assert vector.shape == (128,) and np.linalg.norm(vector) == pytest.approx(1.0, abs=1e-5)
    within = max(np.linalg.norm(a - b) for i, a in enumerate(same) for b in same[i + 1:])
    between = min(np.linalg.norm(a - b) for a in same for b in others)
    assert within < same_person_threshold(dlib_embedder.model_id) and within < between


def test_the_torch_network_read_from_dlibs_file_equals_dlib_on_every_face(detector, dlib_embedder):
    """Every face of the sample archive, cut as the embed job cuts it: the torch module's
    descriptors against dlib.face_recognition_model_v1 on the same chips, after L2 normalisation,
    in one batch and one at a time."""
    from facecluster.udfs.dlib_resnet import DlibEmbedder, load_dlib_reference

    reference = load_dlib_reference()
    chips, cut_from = [], []
    for path in sorted(ARCHIVE.glob("*/*.jpg")):
        photo, faces = faces_of(detector, path)
        chips += [dlib_embedder.chip(photo.pixels, face.box, face.landmarks) for face in faces]
        cut_from += [(photo.pixels, face.box, face.landmarks) for face in faces]
    assert len(chips) >= 25
    one_view = DlibEmbedder(four_views=False)
    mapped = [views[1] for views in chips]  # the chip of MTCNN's box mapped: dlib-one-view's
    expected = np.asarray(reference.compute_face_descriptor(mapped))
    expected /= np.linalg.norm(expected, axis=1, keepdims=True)
    assert np.abs(one_view.embed(mapped) - expected).max() < 1e-4
    assert np.abs(np.stack([one_view.embed([chip])[0] for chip in mapped[:3]]) - expected[:3]).max() < 1e-4
    assert all((one_view.chip(*face) == views[1]).all() for face, views in zip(cut_from[:5], chips))

    # the default embedder: per box, dlib's descriptors of the chip and of its mirror image
    # summed and normalised; the two boxes' then summed and normalised
    def unit(v):
        return v / np.linalg.norm(v, axis=-1, keepdims=True)

    def descriptors(images):
        return np.asarray(reference.compute_face_descriptor([np.ascontiguousarray(i) for i in images]))

    per_box = [unit(descriptors([views[b] for views in chips]) + descriptors([views[b][:, ::-1] for views in chips]))
               for b in (0, 1)]
    assert np.abs(dlib_embedder.embed(chips) - unit(per_box[0] + per_box[1])).max() < 1e-4


def test_dlibs_own_detector_boxes_the_face_mtcnn_found(detector, dlib_embedder):
    """The default embedder hands dlib's landmark model the box dlib's HOG detector draws (the box it
    was trained on), searched only around the face MTCNN found; none for a region without a face."""
    from facecluster.udfs.dlib_resnet import hog_box, overlap

    photo, faces = faces_of(detector, ARCHIVE / "2019_birthday" / "img5.jpg")
    box = faces[0].box.astype(np.float64)
    found = hog_box(dlib_embedder.hog_detector, np.ascontiguousarray(photo.pixels), box)
    assert found is not None and overlap(found, box) > 0.5
    sky = np.full((200, 200, 3), 180, dtype=np.uint8)
    assert hog_box(dlib_embedder.hog_detector, sky, np.array([50.0, 50, 150, 150])) is None


def test_a_damaged_dlib_network_file_is_refused_with_where(tmp_path):
    from facecluster.udfs.dlib_format import DlibFormatError, read_dlib_net
    from facecluster.udfs.dlib_resnet import model_dir

    data = bytearray((model_dir() / "dlib_face_recognition_resnet_model_v1.dat").read_bytes())
    (tmp_path / "cut.dat").write_bytes(data[:len(data) // 2])
    with pytest.raises(DlibFormatError, match="byte"):
        read_dlib_net(tmp_path / "cut.dat")
    data[0x150:0x155] = b"xxx_4"  # the first convolution's name
    (tmp_path / "renamed.dat").write_bytes(bytes(data))
    with pytest.raises(DlibFormatError, match="does not know: 'xxx_4'"):
        read_dlib_net(tmp_path / "renamed.dat")


def test_facenet_plumbing_with_random_weights(detector):
    embedder = facenet.FacenetEmbedder(weights=None, device=torch.device("cpu"))  # random: plumbing only
    photo, faces = faces_of(detector, ARCHIVE / "2019_birthday" / "img5.jpg")
    chip = embedder.chip(photo.pixels, faces[0].box, faces[0].landmarks)
    assert chip.shape == (160, 160, 3) and chip.dtype == np.uint8
    vectors = embedder.embed([chip, chip[:, ::-1].copy()])
    assert vectors.shape == (2, 512)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_missing_facenet_weights_stop_with_the_remedies(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    assert facenet.find_weights(None) is None
    with pytest.raises(facenet.WeightsMissing) as missing:
        facenet.resolve_weights(None, allow_download=False)
    message = str(missing.value)
    assert "embed.facenet_weights" in message and str(tmp_path / "checkpoints") in message and "--embedder dlib" in message
    with pytest.raises(facenet.WeightsMissing, match="not found at /nowhere"):
        facenet.resolve_weights("/nowhere/w.pt")


def test_auto_takes_dlib_without_weights_and_facenet_with_them(tmp_path, monkeypatch):
    from facecluster.udfs.embedders import choose_embedder

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    assert choose_embedder("auto", None) == "dlib"
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / facenet.WEIGHTS_FILE).write_bytes(b"placeholder")
    assert choose_embedder("auto", None) == "facenet"
    assert choose_embedder("dlib", None) == "dlib"
    # a run goes on with the dlib model that embedded its faces, whatever is on disk
    assert choose_embedder("auto", None, ["dlib-resnet-v1"]) == "dlib-one-view"
    assert choose_embedder("auto", None, ["dlib-resnet-v1-four-views"]) == "dlib"
    assert choose_embedder("dlib", None, ["dlib-resnet-v1"]) == "dlib"


@pytest.mark.skipif(facenet.find_weights(None) is None,
                    reason=f"FaceNet VGGFace2 weights are not on this machine ({facenet.cached_weights_path()})")
def test_facenet_with_real_weights_separates_people(detector):
    embedder = facenet.FacenetEmbedder(facenet.find_weights(None), torch.device("cpu"))

    def embedding(relative):
        photo, faces = faces_of(detector, ARCHIVE / relative)
        return embedder.embed([embedder.chip(photo.pixels, faces[0].box, faces[0].landmarks)])[0]

    a, b = embedding("2019_birthday/img5.jpg"), embedding("2021_wedding/img6.jpg")
    c = embedding("2019_birthday/img44.jpg")
    assert np.linalg.norm(a - b) < 1.0 < np.linalg.norm(a - c)


def test_the_frozen_cpu_network_embeds_like_the_eager_one_at_any_batch_size():
    torch.manual_seed(0)
    eager = facenet.load_facenet(None, torch.device("cpu"))  # random weights: the arithmetic is what is compared
    frozen = for_cpu_inference(eager, facenet.CHIP_SIZE)
    for batch in (1, 3, 40):
        faces = torch.randn(batch, 3, facenet.CHIP_SIZE, facenet.CHIP_SIZE)
        with torch.no_grad():
            expected, got = eager(faces), frozen(faces.contiguous(memory_format=torch.channels_last))
        assert got.shape == (batch, facenet.DIMENSION)
        assert torch.allclose(got, expected, atol=1e-5)


def test_mixed_precision_is_kept_only_within_its_tolerance(detector):
    photo, faces = faces_of(detector, ARCHIVE / "2019_birthday" / "img5.jpg")
    torch.manual_seed(0)
    loose = facenet.FacenetEmbedder(None, torch.device("cpu"), mixed_precision=True)  # bf16 on CPU
    chips = [loose.chip(photo.pixels, faces[0].box, faces[0].landmarks)] * 2
    first = loose.embed(chips)  # the check runs on the first batch, which is answered in fp32
    assert loose.precision == "mixed" and 0 <= loose.mixed_precision_gap <= facenet.MIXED_PRECISION_TOLERANCE
    again = loose.embed(chips)
    assert (1 - (first * again).sum(axis=1)).max() <= facenet.MIXED_PRECISION_TOLERANCE
    strict = facenet.FacenetEmbedder(None, torch.device("cpu"), mixed_precision=True, tolerance=0.0)
    strict.model.load_state_dict(loose.model.state_dict())
    strict.embed(chips)
    assert strict.precision == "fp32"  # bf16 is not bit-exact: refused at tolerance 0
