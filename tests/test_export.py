"""`facecluster export`: the named people's face regions as XMP sidecars, read back by an
independent reader (exiftool), on plain photos, photos stored turned with an EXIF orientation,
and cropped photos of odd sizes; the originals untouched, a re-export replacing the last."""
import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image, ImageDraw

from tests.conftest import ARCHIVE

pytestmark = [pytest.mark.spark, pytest.mark.slow]

EXIFTOOL = shutil.which("exiftool")
LOCAL = ["--set", "spark.master=local[2]"]
# A photo stored turned: the stored pixels are the upright photo under this PIL operation, and
# the EXIF orientation tells a viewer how to turn them back (PIL's exif_transpose undoes it).
STORED = {6: Image.Transpose.ROTATE_90, 8: Image.Transpose.ROTATE_270, 3: Image.Transpose.ROTATE_180,
          5: Image.Transpose.TRANSPOSE, 2: Image.Transpose.FLIP_LEFT_RIGHT}
TURNED_FROM = ["2019_birthday/img44.jpg", "2021_wedding/img43.jpg", "2019_birthday/img50.jpg",
               "2021_wedding/img8.jpg", "2019_birthday/img5.jpg"]
CROPPED_FROM = ["2019_birthday/img46.jpg", "2021_wedding/img51.jpg"]


def facecluster(*words) -> int:
    from facecluster.cli import main

    words = [str(w) for w in words]
    extra = ["--embedder", "dlib"] if words[0] == "run" else []
    return main([*words, *extra, *(LOCAL if words[0] in ("run", "cluster") else [])])


def digest_of(root: Path) -> dict:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    """Two albums as they are, and an album of photos stored turned (EXIF orientation 2, 3, 5, 6,
    8) or cropped to odd sizes. Returns (root, orientation the test applied per file)."""
    root = tmp_path_factory.mktemp("export") / "photos"
    for album in ("2019_birthday", "2021_wedding"):
        shutil.copytree(ARCHIVE / album, root / album)
    turned = root / "turned"
    turned.mkdir()
    applied = {}
    for (orientation, operation), source in zip(STORED.items(), TURNED_FROM):
        exif = Image.Exif()
        exif[0x0112] = orientation
        name = f"o{orientation}_{Path(source).name}"
        Image.open(ARCHIVE / source).convert("RGB").transpose(operation).save(turned / name, quality=92,
                                                                               exif=exif.tobytes())
        applied[f"turned/{name}"] = orientation
    for source in CROPPED_FROM:
        image = Image.open(ARCHIVE / source).convert("RGB")
        width, height = image.size
        image.crop((int(width * 0.07) + 1, int(height * 0.05), width - int(width * 0.03), height - 3)).save(
            turned / f"crop_{Path(source).name}", quality=92)
    return root, applied


@pytest.fixture(scope="module")
def named_run(spark, archive, tmp_path_factory):
    """A run over the archive with every person named, clustered again to apply the names."""
    root, _ = archive
    out = tmp_path_factory.mktemp("export_run") / "out"
    assert facecluster("run", root, "--out", out) == 0
    people = pd.read_parquet(out / "people", columns=["person_id"])
    assert len(people) >= 3
    for person in people["person_id"]:
        assert facecluster("label", "--out", out, "name", int(person), f"Person {int(person)} Ünïcode & <x>") == 0
    assert facecluster("cluster", "--out", out) == 0
    return out


def expected_regions(out: Path, root: Path, applied: dict) -> dict[str, list[tuple[str, tuple]]]:
    """Per archive file: (name, (x, y, w, h) in the stored photo, normalised) of each named face,
    found by turning a mask of the upright box with the very operation that stored the photo."""
    faces = pd.read_parquet(out / "faces", columns=["face_id", "photo_id", "box"])
    faces = faces.merge(pd.read_parquet(out / "assignments", columns=["face_id", "person_id"]), on="face_id")
    faces = faces.merge(pd.read_parquet(out / "people", columns=["person_id", "name"]), on="person_id")
    faces = faces.merge(pd.read_parquet(out / "photo_status", columns=["photo_id", "width", "height"]), on="photo_id")
    files = pd.read_parquet(out / "photo_files", columns=["photo_id", "path"])
    expected: dict[str, list] = {}
    for face in faces.merge(files, on="photo_id").itertuples():
        if face.person_id < 0 or not face.name:
            continue
        relative = str(Path(face.path.removeprefix("file:")).relative_to(root))
        mask = Image.new("L", (int(face.width), int(face.height)))
        ImageDraw.Draw(mask).rectangle([round(v) for v in face.box], fill=255)
        if relative in applied:
            mask = mask.transpose(STORED[applied[relative]])
        x1, y1, x2, y2 = mask.getbbox()
        w, h = mask.size
        expected.setdefault(relative, []).append((face.name, ((x1 + x2) / 2 / w, (y1 + y2) / 2 / h,
                                                              (x2 - x1) / w, (y2 - y1) / h), (w, h)))
    return expected


def read_sidecars(folder: Path) -> dict[str, dict]:
    """exiftool's reading of every sidecar under folder, by sidecar path."""
    done = subprocess.run([EXIFTOOL, "-json", "-struct", "-r", "-ext", "xmp", "-XMP-mwg-rs:RegionInfo", str(folder)],
                          capture_output=True, text=True, check=True)
    return {row["SourceFile"]: row.get("RegionInfo", {}) for row in json.loads(done.stdout)}


@pytest.mark.skipif(EXIFTOOL is None, reason="exiftool is missing (Debian: libimage-exiftool-perl, "
                                               "installed by scripts/test.sh when run as root)")
def test_exported_regions_read_back_by_exiftool(named_run, archive, tmp_path):
    root, applied = archive
    before = digest_of(root)
    to = tmp_path / "sidecars"
    assert facecluster("export", named_run, "--to", to) == 0

    expected = expected_regions(named_run, root, applied)
    assert {6, 8, 3, 5, 2} <= {applied[p] for p in expected if p in applied}, "a turned photo has no named face"
    assert any(p.startswith("turned/crop_") for p in expected)
    read = read_sidecars(to)
    assert {str(Path(p).relative_to(to)) for p in read} == {f"{p}.xmp" for p in expected}
    for relative, faces in expected.items():
        info = read[str(to / f"{relative}.xmp")]
        stored_size = faces[0][2]
        assert (info["AppliedToDimensions"]["W"], info["AppliedToDimensions"]["H"]) == stored_size, relative
        assert info["AppliedToDimensions"]["Unit"] == "pixel"
        regions = info["RegionList"]
        assert len(regions) == len(faces), relative
        for name, area, _ in faces:
            found = [r for r in regions if r["Name"] == name and r["Type"] == "Face" and r["Area"]["Unit"] == "normalized"
                     and np.allclose([r["Area"][k] for k in "XYWH"], area, atol=0.01)]
            assert found, f"{relative}: {name} {area} not among {regions}"

    table = pd.read_csv(to / "faces.csv")
    assert list(table.columns) == ["face_id", "person_id", "name", "confidence", "album", "path", "x1", "y1", "x2", "y2",
                                   "photo_width", "photo_height"]
    files = pd.read_parquet(named_run / "photo_files", columns=["photo_id", "path"])
    faces = pd.read_parquet(named_run / "faces", columns=["face_id", "photo_id"]).merge(files, on="photo_id")
    assert sorted(table["face_id"]) == sorted(faces["face_id"]), "every face, one row per face and file"
    grouped = table[table["person_id"] >= 0]
    assert len(grouped) == sum(len(f) for f in expected.values())
    assert (table.loc[table["person_id"] < 0, "name"].isna()).all() and (table["person_id"] == -1).any()
    assert table["confidence"].between(0, 1).all() and (grouped["confidence"] > 0).all()
    sizes = pd.read_parquet(named_run / "photo_status", columns=["photo_id", "width", "height"])
    shown = table.merge(faces[["face_id", "photo_id"]].drop_duplicates(), on="face_id").merge(sizes, on="photo_id")
    assert (shown["photo_width"] == shown["width"]).all() and (shown["photo_height"] == shown["height"]).all()
    assert digest_of(root) == before, "an original was changed"
    assert not list(root.rglob("*.xmp"))


@pytest.mark.skipif(EXIFTOOL is None, reason="exiftool is missing")
def test_a_reexport_replaces_the_last_and_the_archive_is_refused(named_run, archive, tmp_path):
    root, _ = archive
    to = tmp_path / "sidecars"
    assert facecluster("export", named_run, "--to", to) == 0
    first = set(read_sidecars(to))
    foreign = to / "2019_birthday" / "not_ours.jpg.xmp"
    foreign.write_text("<x:xmpmeta xmlns:x='adobe:ns:meta/'/>")

    people = pd.read_parquet(named_run / "people", columns=["person_id", "name", "n_faces"])
    renamed, unnamed = people.sort_values("n_faces", ascending=False)["person_id"].iloc[:2]
    out = tmp_path / "out"
    shutil.copytree(named_run, out)
    assert facecluster("label", "--out", out, "name", int(renamed), "Renamed") == 0
    assert facecluster("label", "--out", out, "merge", int(unnamed), int(renamed)) == 0
    assert facecluster("cluster", "--out", out) == 0
    assert facecluster("export", out, "--to", to) == 0

    names = {r["Name"] for info in read_sidecars(to).values() for r in info.get("RegionList", [])}
    old = set(people.loc[people["person_id"].isin([renamed, unnamed]), "name"])
    assert "Renamed" in names and not names & old
    assert set(read_sidecars(to)) <= first | {str(foreign)} and foreign.exists()

    with pytest.raises(SystemExit) as refused:
        facecluster("export", out, "--to", root / "sidecars")
    assert refused.value.code == 2
    assert not (root / "sidecars").exists()


def test_stored_box_turns_an_upright_box_back_for_every_orientation():
    """Against PIL: the box of a mask turned by each EXIF orientation's inverse operation."""
    from facecluster.output.export import stored_box

    inverse = {1: None, 2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180,
               4: Image.Transpose.FLIP_TOP_BOTTOM, 5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_90,
               7: Image.Transpose.TRANSVERSE, 8: Image.Transpose.ROTATE_270}
    box = (30, 10, 70, 45)
    for orientation, operation in inverse.items():
        mask = Image.new("L", (120, 80))
        ImageDraw.Draw(mask).rectangle([box[0], box[1], box[2] - 1, box[3] - 1], fill=255)
        stored = mask.transpose(operation) if operation is not None else mask
        assert viewer_turns_back(stored, orientation, mask)
        assert stored_box(box, 120, 80, orientation) == pytest.approx(stored.getbbox()), orientation


def viewer_turns_back(stored: Image.Image, orientation: int, upright: Image.Image) -> bool:
    """The stored mask, tagged with the orientation, is the upright mask once a viewer turns it."""
    from PIL import ImageOps

    exif = Image.Exif()
    exif[0x0112] = orientation
    tagged = stored.copy()
    tagged.info["exif"] = exif.tobytes()
    tagged.getexif()[0x0112] = orientation
    return np.array_equal(np.asarray(ImageOps.exif_transpose(tagged)), np.asarray(upright))


THEIRS = """<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>
<x:xmpmeta xmlns:x="adobe:ns:meta/" x:xmptk="XMP Core 4.4.0-Exiv2">
 <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
  <rdf:Description rdf:about="" xmlns:exif="http://ns.adobe.com/exif/1.0/" xmlns:xmp="http://ns.adobe.com/xap/1.0/"
    xmlns:digiKam="http://www.digikam.org/ns/1.0/" xmlns:lr="http://ns.adobe.com/lightroom/1.0/"
    xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:Iptc4xmpExt="http://iptc.org/std/Iptc4xmpExt/2008-02-29/"
    xmlns:mwg-rs="http://www.metadataworkinggroup.com/schemas/regions/"
    xmlns:stDim="http://ns.adobe.com/xap/1.0/sType/Dimensions#" xmlns:stArea="http://ns.adobe.com/xmp/sType/Area#"
   exif:DateTimeOriginal="2019-05-04T13:22:01" xmp:Rating="4">
   <digiKam:TagsList><rdf:Seq><rdf:li>Places/Paris</rdf:li><rdf:li>People/Hand Named</rdf:li></rdf:Seq></digiKam:TagsList>
   <lr:hierarchicalSubject><rdf:Bag><rdf:li>Places|Paris</rdf:li></rdf:Bag></lr:hierarchicalSubject>
   <dc:subject><rdf:Bag><rdf:li>Paris</rdf:li><rdf:li>birthday</rdf:li></rdf:Bag></dc:subject>
   <dc:description><rdf:Alt><rdf:li xml:lang="x-default">The cake, at last</rdf:li></rdf:Alt></dc:description>
   <Iptc4xmpExt:PersonInImage><rdf:Bag><rdf:li>Grandma</rdf:li></rdf:Bag></Iptc4xmpExt:PersonInImage>
   <mwg-rs:Regions rdf:parseType="Resource">
    <mwg-rs:AppliedToDimensions stDim:w="{w}" stDim:h="{h}" stDim:unit="pixel"/>
    <mwg-rs:RegionList><rdf:Bag>
     <rdf:li><rdf:Description mwg-rs:Name="Hand Named" mwg-rs:Type="Face">
      <mwg-rs:Area stArea:x="{x}" stArea:y="{y}" stArea:w="{fw}" stArea:h="{fh}" stArea:unit="normalized"/>
     </rdf:Description></rdf:li>
     <rdf:li><rdf:Description mwg-rs:Name="Rex" mwg-rs:Type="Pet">
      <mwg-rs:Area stArea:x="0.01" stArea:y="0.01" stArea:w="0.02" stArea:h="0.02" stArea:unit="normalized"/>
     </rdf:Description></rdf:li>
    </rdf:Bag></mwg-rs:RegionList>
   </mwg-rs:Regions>
  </rdf:Description>
 </rdf:RDF>
</x:xmpmeta>
<?xpacket end="w"?>
"""


def test_a_face_another_tool_named_keeps_its_region_and_name(tmp_path):
    """Where a photo manager drew a region on a face (a name given by hand), facecluster adds no
    second region there; its region on another face is added."""
    from facecluster.output.sidecars import Region, SidecarContent, read_regions, write_sidecar

    sidecar = tmp_path / "photo.jpg.xmp"
    sidecar.write_text(THEIRS.format(w=400, h=300, x=0.30, y=0.40, fw=0.10, fh=0.12), encoding="utf-8")
    content = SidecarContent([Region("person 3", 0.305, 0.395, 0.10, 0.12, "p:0"),
                              Region("person 4", 0.70, 0.50, 0.10, 0.12, "p:1")], 400, 300)
    added = write_sidecar(sidecar, content)
    assert added == {"created": False, "people": [], "keywords": []}
    import exiv2

    image = exiv2.ImageFactory.open(str(sidecar))
    image.readMetadata()
    names = [dict((k, v.toString()) for k, v in item).get("/mwg-rs:Name") for item in read_regions(image.xmpData())]
    assert names == ["Hand Named", "Rex", "person 4"]


def exiftool_tags(path: Path) -> dict:
    """Every tag exiftool reads from a sidecar, structures whole (the file's own System and
    File tags left out)."""
    done = subprocess.run([EXIFTOOL, "-json", "-struct", "-G1", "-a", str(path)], capture_output=True, text=True,
                          check=True)
    return {k: v for k, v in json.loads(done.stdout)[0].items()
            if not k.startswith(("System:", "File:", "ExifTool:")) and k != "SourceFile"}


@pytest.mark.skipif(EXIFTOOL is None, reason="exiftool is missing")
def test_an_existing_sidecar_gets_the_regions_and_keeps_everything_else(named_run, archive, tmp_path):
    """A photo manager's sidecar (digiKam's tags, a rating, keywords, a description, a person
    named by hand on one face, a pet) beside a photo: the export adds facecluster's regions, and
    as asked PersonInImage and keywords; exiftool reads every other tag as before. Exported again
    without the options, the names and keywords it added are taken back; theirs stay."""
    root, applied = archive
    before = digest_of(root)
    expected = expected_regions(named_run, root, applied)
    relative, faces = next((p, f) for p, f in sorted(expected.items()) if p not in applied)
    w, h = faces[0][2]
    theirs = root / f"{relative}.xmp"
    theirs.write_text(THEIRS.format(w=w, h=h, x=0.95, y=0.95, fw=0.04, fh=0.04), encoding="utf-8")
    original = exiftool_tags(theirs)
    assert original["XMP-iptcExt:PersonInImage"] == ["Grandma"] and original["XMP-dc:Subject"] == ["Paris", "birthday"]
    try:
        assert facecluster("export", named_run, "--to", tmp_path / "csv", "--beside-originals",
                           "--person-in-image", "--keywords", "--unnamed") == 0
        now = exiftool_tags(theirs)
        changed = {"XMP-mwg-rs:RegionInfo", "XMP-iptcExt:PersonInImage", "XMP-dc:Subject"}
        assert {k: v for k, v in now.items() if k not in changed} == \
            {k: v for k, v in original.items() if k not in changed}, "every other tag as it was"
        regions = now["XMP-mwg-rs:RegionInfo"]["RegionList"]
        kept = [r for r in regions if r["Name"] in ("Hand Named", "Rex")]
        assert kept == original["XMP-mwg-rs:RegionInfo"]["RegionList"], "their regions whole, in their order"
        added = regions[len(kept):]
        assert sorted(r["Name"] for r in added) == sorted(name for name, _, _ in faces), "a region for each face"
        names = sorted({name for name, _, _ in faces})
        assert now["XMP-iptcExt:PersonInImage"] == ["Grandma", *names]
        assert now["XMP-dc:Subject"] == ["Paris", "birthday", *names]

        assert facecluster("export", named_run, "--to", tmp_path / "csv", "--beside-originals") == 0
        again = exiftool_tags(theirs)
        assert again["XMP-iptcExt:PersonInImage"] == ["Grandma"] and again["XMP-dc:Subject"] == ["Paris", "birthday"]
        assert again["XMP-mwg-rs:RegionInfo"] == now["XMP-mwg-rs:RegionInfo"]
        written = set(read_sidecars(root))
        assert written and all(Path(p).with_suffix("").exists() for p in written)  # beside each photo
        assert {p: d for p, d in digest_of(root).items() if not p.endswith(".xmp")} == before
        assert (tmp_path / "csv" / "faces.csv").exists()
    finally:
        for sidecar in root.rglob("*.xmp"):
            sidecar.unlink()


def test_exporting_what_is_not_a_run_stops_with_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as stopped:
        facecluster("export", tmp_path, "--to", tmp_path / "sidecars")
    assert stopped.value.code == 2
    assert "is not a clustered run (no faces, assignments" in capsys.readouterr().err
    assert not (tmp_path / "sidecars").exists()


def test_a_link_in_the_export_folder_that_leads_into_the_archive_is_refused(named_run, archive, tmp_path):
    root, _ = archive
    to = tmp_path / "sidecars"
    to.mkdir()
    (to / "2019_birthday").symlink_to(root / "2019_birthday")
    before = digest_of(root)
    with pytest.raises(SystemExit) as refused:
        facecluster("export", named_run, "--to", to)
    assert refused.value.code == 2
    assert digest_of(root) == before, "nothing written into the archive"


def test_the_archive_root_is_the_one_ingest_recorded():
    """An album named like a folder above it made the guess from paths pick the wrong root."""
    from facecluster.output.export import archive_root

    files = pd.DataFrame({"path": ["file:/data/pics/data/a.jpg", "file:/data/pics/data/b.jpg"], "album": ["data", "data"]})
    assert archive_root(files) != "file:/data/pics"  # what the guess gives
    assert archive_root(files.assign(root="file:/data/pics")) == "file:/data/pics"
