"""XMP sidecars edited in place with exiv2 (python-exiv2, libexiv2's own binding, from PyPI with
the library inside the wheel): facecluster's face regions, and where asked the names as IPTC
PersonInImage and dc:subject keywords, are added to a sidecar another tool wrote (digiKam,
Lightroom, darktable, a camera), and everything else in it is kept.

Why exiv2: a sidecar is RDF, which one tool writes as attributes and another as elements, with
namespaces of its own; merging it as text or as plain XML would rewrite what it does not
understand. exiv2 is what digiKam itself reads and writes sidecars with, it installs from the
package registry with no system library (exiftool is a Perl program, a system package; Exempi,
under python-xmp-toolkit, is a system library too), and its XMP toolkit keeps every property it
does not know.

What is facecluster's in a sidecar: the regions that carry facecluster:FaceId, and the names and
keywords the last export recorded as added by it (the export folder's manifest). A face another
tool already drew a region on (the same place: intersection over union 0.5 or more) keeps that
region, its name included: a name given by hand in a photo manager is not overwritten.
"""
from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

NAMESPACE = "https://facecluster.invalid/ns/xmp/1.0/"  # a name, never fetched
PREFIX = "facecluster"
REGIONS = "Xmp.mwg-rs.Regions"
REGION_LIST = f"{REGIONS}/mwg-rs:RegionList"
DIMENSIONS = f"{REGIONS}/mwg-rs:AppliedToDimensions"
PERSON_IN_IMAGE = "Xmp.iptcExt.PersonInImage"
SUBJECT = "Xmp.dc.subject"
SAME_FACE = 0.5  # intersection over union of two regions on one face

_ITEM = re.compile(re.escape(REGION_LIST) + r"\[(\d+)\](.*)")


@dataclass(frozen=True)
class Region:
    name: str
    x: float  # centre, normalised to the stored width
    y: float
    w: float
    h: float
    face_id: str = ""


@dataclass
class SidecarContent:
    regions: list[Region]
    width: int  # the stored photo's pixels (before the EXIF orientation turns it upright)
    height: int
    people: list[str] = field(default_factory=list)    # IPTC PersonInImage, when asked
    keywords: list[str] = field(default_factory=list)  # dc:subject, when asked


def _exiv2():
    import exiv2

    if PREFIX not in _registered:
        exiv2.XmpProperties.registerNs(NAMESPACE, PREFIX)
        _registered.add(PREFIX)
    return exiv2


_registered: set[str] = set()


def write_sidecar(path: Path, content: SidecarContent, added_before: dict | None = None) -> dict:
    """Put `content` into the sidecar at path (made when absent), first taking out what
    facecluster put there before (`added_before`: what this returned last time). Returns what it
    added now: {"created": the file is facecluster's own, "people": [...], "keywords": [...]}.
    The file is replaced whole once written (a copy edited, then renamed over it)."""
    exiv2 = _exiv2()
    added_before = added_before or {}
    created = bool(added_before.get("created")) or not path.exists()
    partial = path.with_name(path.name + ".partial")
    if path.exists():
        image = _open_copy(exiv2, path, partial)
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        image = exiv2.ImageFactory.create(exiv2.ImageType.xmp, str(partial))
    xmp = image.xmpData()
    _put_regions(exiv2, xmp, content)
    people = _put_bag(exiv2, xmp, PERSON_IN_IMAGE, content.people, added_before.get("people", []))
    keywords = _put_bag(exiv2, xmp, SUBJECT, content.keywords, added_before.get("keywords", []))
    if created and not any(True for _ in xmp):
        image = None
        partial.unlink(missing_ok=True)
        path.unlink(missing_ok=True)  # facecluster's own sidecar, left with nothing: gone
        return {"created": True, "people": [], "keywords": []}
    image.writeMetadata()
    image = None
    os.replace(partial, path)
    return {"created": created, "people": people, "keywords": keywords}


class UnreadableSidecar(ValueError):
    """A file where a sidecar goes that is not XMP: left as it is."""


PACKET = ('<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>\n', '\n<?xpacket end="w"?>\n')


def _open_copy(exiv2, path: Path, partial: Path):
    """The sidecar's copy at `partial`, opened and read. exiv2 knows an XMP file by its packet
    wrapper; a sidecar written without one (a bare x:xmpmeta, an XML declaration first) is given
    one in the copy, its content unchanged."""
    shutil.copyfile(path, partial)
    try:
        image = exiv2.ImageFactory.open(str(partial))
        image.readMetadata()
        return image
    except exiv2.Exiv2Error:
        pass
    text = path.read_text(encoding="utf-8", errors="strict") if path.stat().st_size < 64 << 20 else ""
    body = re.sub(r"^\ufeff?\s*(<\?xml[^>]*\?>)?\s*", "", text)
    if "<x:xmpmeta" not in body and "<rdf:RDF" not in body:
        partial.unlink(missing_ok=True)
        raise UnreadableSidecar(f"{path} is not an XMP sidecar: left as it is, no regions written to it")
    partial.write_text(PACKET[0] + body + PACKET[1], encoding="utf-8")
    try:
        image = exiv2.ImageFactory.open(str(partial))
        image.readMetadata()
        return image
    except exiv2.Exiv2Error as exc:
        partial.unlink(missing_ok=True)
        raise UnreadableSidecar(f"{path} cannot be read as XMP ({exc}): left as it is, no regions written to it") \
            from None


def remove_from_sidecar(path: Path, added_before: dict) -> None:
    """Take facecluster's regions and additions out of a sidecar (deleted when it is
    facecluster's own and nothing else is in it)."""
    if path.exists():
        write_sidecar(path, SidecarContent([], 0, 0), added_before)


def read_regions(xmp) -> list[list[tuple[str, object]]]:
    """The region list's items, each as its (key suffix, value) pairs in order."""
    items: dict[int, list] = {}
    for datum in xmp:
        found = _ITEM.match(datum.key())
        if found:
            items.setdefault(int(found.group(1)), []).append((found.group(2), datum.getValue().clone()))
    return [items[i] for i in sorted(items)]


def _box(item) -> tuple[float, float, float, float] | None:
    fields = {suffix.rsplit(":", 1)[-1]: value.toString() for suffix, value in item if suffix.startswith("/mwg-rs:Area/")}
    try:
        if fields.get("unit", "normalized") != "normalized":
            return None
        return float(fields["x"]), float(fields["y"]), float(fields["w"]), float(fields["h"])
    except (KeyError, ValueError):
        return None


def _overlap(a, b) -> float:
    ax1, ay1, ax2, ay2 = a[0] - a[2] / 2, a[1] - a[3] / 2, a[0] + a[2] / 2, a[1] + a[3] / 2
    bx1, by1, bx2, by2 = b[0] - b[2] / 2, b[1] - b[3] / 2, b[0] + b[2] / 2, b[1] + b[3] / 2
    inter = max(0.0, min(ax2, bx2) - max(ax1, bx1)) * max(0.0, min(ay2, by2) - max(ay1, by1))
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else 0.0


def _put_regions(exiv2, xmp, content: SidecarContent) -> None:
    ours = f"/{PREFIX}:FaceId"
    theirs = [item for item in read_regions(xmp) if not any(suffix == ours for suffix, _ in item)]
    taken = [box for box in (_box(item) for item in theirs) if box is not None]
    mine = [r for r in content.regions
            if not any(_overlap((r.x, r.y, r.w, r.h), box) >= SAME_FACE for box in taken)]
    for key in [d.key() for d in xmp if d.key().startswith(REGION_LIST)]:
        xmp.erase(xmp.findKey(exiv2.XmpKey(key)))
    if not theirs and not mine:
        if not any(d.key().startswith(REGIONS + "/") and not d.key().startswith(DIMENSIONS) for d in xmp):
            for key in [d.key() for d in xmp if d.key().startswith(REGIONS)]:  # nothing but dimensions left
                xmp.erase(xmp.findKey(exiv2.XmpKey(key)))
        return
    struct = exiv2.XmpTextValue()
    struct.setXmpStruct()
    if xmp.findKey(exiv2.XmpKey(REGIONS)) == xmp.end():
        xmp.add(exiv2.XmpKey(REGIONS), struct)
    if xmp.findKey(exiv2.XmpKey(DIMENSIONS)) == xmp.end() and content.width:
        xmp.add(exiv2.XmpKey(DIMENSIONS), struct)
        xmp[f"{DIMENSIONS}/stDim:w"] = str(content.width)
        xmp[f"{DIMENSIONS}/stDim:h"] = str(content.height)
        xmp[f"{DIMENSIONS}/stDim:unit"] = "pixel"
    bag = exiv2.XmpTextValue()
    bag.setXmpArrayType(exiv2.XmpValue.XmpArrayType.xaBag)
    xmp.add(exiv2.XmpKey(REGION_LIST), bag)
    for number, item in enumerate(theirs, start=1):
        for suffix, value in item:
            xmp.add(exiv2.XmpKey(f"{REGION_LIST}[{number}]{suffix}"), value)
    for number, region in enumerate(mine, start=len(theirs) + 1):
        item = f"{REGION_LIST}[{number}]"
        xmp.add(exiv2.XmpKey(item), struct)
        xmp[f"{item}/mwg-rs:Name"] = region.name
        xmp[f"{item}/mwg-rs:Type"] = "Face"
        xmp.add(exiv2.XmpKey(f"{item}/mwg-rs:Area"), struct)
        for axis in ("x", "y", "w", "h"):
            xmp[f"{item}/mwg-rs:Area/stArea:{axis}"] = f"{getattr(region, axis):.6f}"
        xmp[f"{item}/mwg-rs:Area/stArea:unit"] = "normalized"
        xmp[f"{item}/{PREFIX}:FaceId"] = region.face_id


def _put_bag(exiv2, xmp, key: str, wanted: list[str], added_before: list[str]) -> list[str]:
    """An unordered list (a bag) with facecluster's earlier additions taken out and `wanted` put
    in where absent; returns those it added."""
    found = xmp.findKey(exiv2.XmpKey(key))
    present = []
    if found != xmp.end():
        value = found.getValue()
        present = [value.toString(i) for i in range(value.count())]
        xmp.erase(found)
    earlier = set(added_before)
    kept = [v for v in present if v not in earlier]
    added = [v for v in dict.fromkeys(wanted) if v not in kept]
    values = kept + added
    if values:
        bag = exiv2.XmpArrayValue(exiv2.TypeId.xmpBag)
        for v in values:
            bag.read(v)
        xmp.add(exiv2.XmpKey(key), bag)
    return added
