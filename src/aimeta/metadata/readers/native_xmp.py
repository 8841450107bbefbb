"""XMP packets for the native reader, named the way ``exiftool -G1 -n`` names them.

Group ``XMP-<prefix>``: ExifTool's standard prefix for namespaces it knows (``dc``, ``xmp``,
``exif``, ``tiff``, ``photoshop``, ...; ``Iptc4xmpCore`` becomes ``iptcCore``), the
document's own prefix otherwise. Name: ExifTool's name for the property where it renames
one (``tiff:ImageLength`` -> ``ImageHeight``, ``exif:PixelXDimension`` ->
``ExifImageWidth``), otherwise the property name with its first letter capitalised;
structure fields are flattened into ``ParentField``. Language alternatives: ``x-default``
under the plain name, others as ``Name-<lang>``. Bags and sequences with several items
are lists. Values: rationals (``72/1``) and ISO dates (``2024-01-02T03:04:05``) are
converted as ExifTool converts them (dates only for unknown or date-typed properties).

Known differences from ExifTool (none affect the text fields generators use):
structure fields of ExifTool-known structures keep the flattened ``ParentField`` name even
where ExifTool has a shorter one; XML attribute values have their whitespace normalised by
the XML parser; extended XMP (a packet split over several JPEG segments) is not joined.

Safety: packets over ``MAX_XMP_BYTES`` and packets declaring a DOCTYPE or entities are
ignored with a warning (ExifTool expands no entities either), so no entity expansion.
"""

from __future__ import annotations

import io
import re
import xml.etree.ElementTree as ElementTree

from aimeta.files import MAX_XMP_BYTES
from aimeta.metadata.readers.native_values import Value, binary_placeholder, fix_utf8, json_value

_RDF = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
_XML = "http://www.w3.org/XML/1998/namespace"
_X = "adobe:ns:meta/"
_LIST_TYPES = frozenset({f"{{{_RDF}}}Bag", f"{{{_RDF}}}Seq", f"{{{_RDF}}}Alt"})
_SHORT_PREFIX = {
    "Iptc4xmpCore": "iptcCore",
    "Iptc4xmpExt": "iptcExt",
    "photomechanic": "photomech",
    "MicrosoftPhoto": "microsoft",
    "prismusagerights": "pur",
    "GettyImagesGIFT": "getty",
    "hdr_metadata": "hdr",
}

# namespace URI -> ExifTool's prefix for it
_NAMESPACES = """
http://ns.adobe.com/DICOM/ DICOM
http://ns.google.com/photos/1.0/audio/ GAudio
http://ns.google.com/photos/1.0/camera/ GCamera
http://ns.google.com/photos/1.0/creations/ GCreations
http://ns.google.com/photos/1.0/depthmap/ GDepth
http://ns.google.com/photos/1.0/focus/ GFocus
http://ns.google.com/photos/1.0/image/ GImage
http://ns.google.com/photos/1.0/panorama/ GPano
http://ns.google.com/videos/1.0/spherical/ GSpherical
http://xmp.gettyimages.com/gift/1.0/ GettyImagesGIFT
http://iptc.org/std/Iptc4xmpCore/1.0/xmlns/ Iptc4xmpCore
http://iptc.org/std/Iptc4xmpExt/2008-02-29/ Iptc4xmpExt
http://ns.leiainc.com/photos/1.0/image/ LImage
http://ns.microsoft.com/photo/1.2/ MP
http://ns.microsoft.com/photo/1.1 MP1
http://ns.microsoft.com/photo/1.2/t/RegionInfo# MPRI
http://ns.microsoft.com/photo/1.2/t/Region# MPReg
http://ns.microsoft.com/photo/1.0 MicrosoftPhoto
http://ns.google.com/photos/dd/1.0/profile/ Profile
http://ns.apple.com/adjustment-settings/1.0/ aas
http://ns.acdsee.com/iptc/1.0/ acdsee
http://ns.adobe.com/album/1.0/ album
http://ns.apple.com/faceinfo/1.0/ apple-fi
http://ns.nikon.com/asteroid/1.0/ ast
http://ns.adobe.com/exif/1.0/aux/ aux
http://creativecommons.org/ns# cc
http://developer.sonyericsson.com/cell/1.0/ cell
http://ns.adobe.com/camera-raw-defaults/1.0/ crd
http://ns.adobe.com/creatorAtom/1.0/ creatorAtom
http://ns.adobe.com/camera-raw-embedded-lens-profile/1.0/ crlcp
http://ns.adobe.com/camera-raw-settings/1.0/ crs
http://ns.adobe.com/camera-raw-saved-settings/1.0/ crss
http://purl.org/dc/elements/1.1/ dc
http://ns.optimasc.com/dex/1.0/ dex
http://www.digikam.org/ns/1.0/ digiKam
http://www.dji.com/drone-dji/1.0/ drone-dji
http://rs.tdwg.org/dwc/index.htm dwc
http://ns.exiftool.org/1.0/ et
http://ns.adobe.com/exif/1.0/ exif
http://cipa.jp/exif/1.0/ exifEX
http://ns.microsoft.com/expressionmedia/1.0/ expressionmedia
http://ns.extensis.com/extensis/1.0/ extensis
http://ns.fastpictureviewer.com/fpv/1.0/ fpv
http://ns.adobe.com/hdr-metadata/1.0/ hdr_metadata
http://ns.adobe.com/iX/1.0/ iX
http://ns.idimager.com/ics/1.0/ ics
http://ns.adobe.com/lightroom/1.0/ lr
http://ns.iview-multimedia.com/mediapro/1.0/ mediapro
http://www.metadataworkinggroup.com/schemas/collections/ mwg-coll
http://www.metadataworkinggroup.com/schemas/keywords/ mwg-kw
http://www.metadataworkinggroup.com/schemas/regions/ mwg-rs
http://ns.nikon.com/nine/1.0/ nine
http://ns.adobe.com/pdf/1.3/ pdf
http://ns.adobe.com/pdfx/1.3/ pdfx
http://ns.adobe.com/photoshop/1.0/ photoshop
http://ns.useplus.org/ldf/xmp/1.0/ plus
http://prismstandard.org/namespaces/pmi/2.2/ pmi
http://prismstandard.org/namespaces/basic/2.0/ prism
http://prismstandard.org/namespaces/prl/2.1/ prl
http://prismstandard.org/namespaces/prm/3.0/ prm
http://prismstandard.org/namespaces/prismusagerights/2.1/ pur
http://www.w3.org/1999/02/22-rdf-syntax-ns# rdf
http://www.w3.org/2000/01/rdf-schema# rdfs
http://ns.nikon.com/sdc/1.0/ sdc
http://ns.adobe.com/xmp/sType/Area# stArea
http://ns.adobe.com/photoshop/1.0/camera-profile stCamera
http://ns.adobe.com/xap/1.0/sType/Dimensions# stDim
http://ns.adobe.com/xap/1.0/sType/ResourceEvent# stEvt
http://ns.adobe.com/xap/1.0/sType/Font# stFnt
http://ns.adobe.com/xap/1.0/sType/Job# stJob
http://ns.adobe.com/xap/1.0/sType/ManifestItem# stMfs
http://ns.adobe.com/xap/1.0/sType/ResourceRef# stRef
http://ns.adobe.com/xap/1.0/sType/Version# stVer
http://www.w3.org/2000/svg svg
http://ns.adobe.com/swf/1.0/ swf
http://ns.adobe.com/tiff/1.0/ tiff
adobe:ns:meta/ x
http://ns.adobe.com/xap/1.0/ xmp
http://ns.adobe.com/xap/1.0/bj/ xmpBJ
http://ns.adobe.com/xmp/1.0/DynamicMedia/ xmpDM
http://ns.adobe.com/xap/1.0/g/ xmpG
http://ns.adobe.com/xap/1.0/g/img/ xmpGImg
http://ns.adobe.com/xap/1.0/mm/ xmpMM
http://ns.adobe.com/xmp/note/ xmpNote
http://ns.adobe.com/xap/1.0/PLUS/ xmpPLUS
http://ns.adobe.com/xap/1.0/rights/ xmpRights
http://ns.adobe.com/xap/1.0/t/pg/ xmpTPg
http://ns.adobe.com/xmp/Identifier/qual/1.0/ xmpidq
"""

# prefix -> "property[=Name][:d date|:r rational|:s structure] ..." (ExifTool 12.57 tables)
_KNOWN = {
    "dc": (
        "contributor coverage creator date:d description format identifier language "
        "publisher relation rights source subject title type "
    ),
    "xmp": (
        "Advisory Author BaseURL CreateDate:d CreatorTool Description Format Identifier "
        "Keywords Label MetadataDate:d ModifyDate:d Nickname PageInfo:s "
        "PageInfoImage=PageImage Rating RatingPercent Thumbnails:s Title "
    ),
    "tiff": (
        "Artist BitsPerSample Compression Copyright DateTime:d ImageDescription "
        "ImageLength=ImageHeight ImageWidth Make Model NativeDigest Orientation "
        "PhotometricInterpretation PlanarConfiguration PrimaryChromaticities:r "
        "ReferenceBlackWhite:r ResolutionUnit SamplesPerPixel Software TransferFunction "
        "WhitePoint:r XResolution:r YCbCrCoefficients:r YCbCrPositioning "
        "YCbCrSubSampling YResolution:r "
    ),
    "exif": (
        "ApertureValue:r BrightnessValue:r CFAPattern:s ColorSpace "
        "ComponentsConfiguration CompressedBitsPerPixel:r Contrast CustomRendered "
        "DateTimeDigitized:d DateTimeOriginal:d DeviceSettingDescription:s "
        "DigitalZoomRatio:r ExifVersion ExposureBiasValue=ExposureCompensation:r "
        "ExposureIndex:r ExposureMode ExposureProgram ExposureTime:r FNumber:r "
        "FileSource Flash:s FlashEnergy:r FlashpixVersion FocalLength:r "
        "FocalLengthIn35mmFilm=FocalLengthIn35mmFormat FocalPlaneResolutionUnit "
        "FocalPlaneXResolution:r FocalPlaneYResolution:r GPSAltitude:r GPSAltitudeRef "
        "GPSAreaInformation GPSDestBearing:r GPSDestBearingRef GPSDestDistance:r "
        "GPSDestDistanceRef GPSDestLatitude GPSDestLongitude GPSDifferential "
        "GPSHPositioningError:r GPSImgDirection:r GPSImgDirectionRef GPSLatitude "
        "GPSLongitude GPSMapDatum GPSMeasureMode GPSProcessingMethod GPSSatellites "
        "GPSSpeed:r GPSSpeedRef GPSStatus GPSTimeStamp=GPSDateTime:d GPSTrack:r "
        "GPSTrackRef GPSVersionID GainControl ISOSpeedRatings=ISO ImageUniqueID "
        "LightSource MakerNote MaxApertureValue:r MeteringMode NativeDigest "
        "PixelXDimension=ExifImageWidth PixelYDimension=ExifImageHeight RelatedSoundFile "
        "Saturation SceneCaptureType SceneType SensingMethod Sharpness "
        "ShutterSpeedValue:r SpatialFrequencyResponse:s SpectralSensitivity SubjectArea "
        "SubjectDistance:r SubjectDistanceRange SubjectLocation UserComment WhiteBalance "
    ),
    "exifEX": (
        "Acceleration:r BodySerialNumber=SerialNumber CameraElevationAngle:r "
        "CameraOwnerName=OwnerName CompositeImage CompositeImageCount "
        "CompositeImageExposureTimes:s Gamma:r Humidity:r ISOSpeed ISOSpeedLatitudeyyy "
        "ISOSpeedLatitudezzz InteroperabilityIndex=InteropIndex LensMake LensModel "
        "LensSerialNumber LensSpecification=LensInfo:r PhotographicSensitivity "
        "Pressure:r RecommendedExposureIndex SensitivityType StandardOutputSensitivity "
        "Temperature=AmbientTemperature:r WaterDepth:r "
    ),
    "photoshop": (
        "AuthorsPosition CameraProfiles:s CaptionWriter Category City ColorMode Country "
        "Credit DateCreated:d DocumentAncestors EmbeddedXMPDigest Headline History "
        "ICCProfile=ICCProfileName Instructions LegacyIPTCDigest SidecarForExtension "
        "Source State SupplementalCategories TextLayers:s TransmissionReference Urgency "
    ),
    "xmpMM": (
        "DerivedFrom:s DocumentID History:s Ingredients:s InstanceID LastURL ManageTo "
        "ManageUI ManagedFrom:s Manager ManagerVariant Manifest:s OriginalDocumentID "
        "Pantry:s PreservedFileName RenditionClass RenditionOf:s RenditionParams SaveID "
        "VersionID Versions:s subject "
    ),
    "xmpRights": ("Certificate Marked Owner UsageTerms WebStatement "),
    "aux": (
        "ApproximateFocusDistance:r DistortionCorrectionAlreadyApplied "
        "EnhanceDetailsAlreadyApplied EnhanceDetailsVersion "
        "EnhanceSuperResolutionAlreadyApplied EnhanceSuperResolutionScale:r "
        "EnhanceSuperResolutionVersion Firmware FlashCompensation:r ImageNumber "
        "IsMergedHDR IsMergedPanorama LateralChromaticAberrationCorrectionAlreadyApplied "
        "Lens LensDistortInfo LensID LensInfo LensSerialNumber NeutralDensityFactor "
        "OwnerName SerialNumber VignetteCorrectionAlreadyApplied "
    ),
}


def _parse_namespaces() -> dict[str, str]:
    table: dict[str, str] = {}
    for line in _NAMESPACES.split("\n"):
        if line:
            uri, prefix = line.split(" ")
            table[uri] = _SHORT_PREFIX.get(prefix, prefix)
    return table


def _parse_known() -> dict[tuple[str, str], tuple[str, str]]:
    """(prefix, property) -> (ExifTool name, "d" date / "r" rational / "s" structure / "")."""
    table: dict[tuple[str, str], tuple[str, str]] = {}
    for prefix, spec in _KNOWN.items():
        for item in spec.split():
            prop, _, kind = item.partition(":")
            prop, _, name = prop.partition("=")
            table[(_SHORT_PREFIX.get(prefix, prefix), prop)] = (
                name or prop[:1].upper() + prop[1:],
                kind,
            )
    return table


_PREFIX_OF_URI = _parse_namespaces()
_KNOWN_PROPERTIES = _parse_known()

_RATIONAL = re.compile(r"(-?\d+)/(-?\d+)", re.ASCII)
_FULL_DATE = re.compile(r"(\d{4})-(\d{2})-(\d{2})[T ](\d{2}:\d{2})(:\d{2})?\s*(\S*)", re.ASCII)
_PARTIAL_DATE = re.compile(r"\d{4}(?:-\d{2}){0,2}", re.ASCII)
_LANG_WITH_REGION = re.compile(r"([a-z]{2,3}|[xi])(-[a-z]{2})\b(.*)", re.IGNORECASE | re.DOTALL)


def tag_name(raw: str) -> str:
    """A tag name the way ExifTool makes one for a property or keyword it does not know."""
    name = re.sub(r"\s+(.)", lambda match: match.group(1).upper(), raw, flags=re.DOTALL)
    name = re.sub(r"[^-_a-zA-Z0-9]", "", name)
    name = name[:1].upper() + name[1:]
    if len(name) < 2 or not ("a" <= name[:1].lower() <= "z"):
        name = "Tag" + name
    return name


def standard_language(lang: str) -> str:
    """RFC 3066 language code in ExifTool's case (``en-us`` -> ``en-US``)."""
    match = _LANG_WITH_REGION.match(lang)
    if match:
        return match.group(1).lower() + match.group(2).upper() + match.group(3).lower()
    return lang.lower()


def _convert_rational(text: str) -> str | None:
    match = _RATIONAL.fullmatch(text)
    if not match:
        return None
    numerator, denominator = int(match.group(1)), int(match.group(2))
    if denominator:
        return f"{numerator / denominator:.15g}"
    return "inf" if numerator else "undef"


def _convert_date(text: str, unsure: bool) -> str:
    match = _FULL_DATE.fullmatch(text)
    if match:
        year, month, day, hour_minute, seconds, zone = match.groups()
        return f"{year}:{month}:{day} {hour_minute}{seconds or ''}{zone}"
    if not unsure and _PARTIAL_DATE.match(text):
        return text.replace("-", ":")
    return text


def _split(qualified: str) -> tuple[str, str]:
    if qualified.startswith("{"):
        uri, _, local = qualified[1:].partition("}")
        return uri, local
    return "", qualified


class _Collector:
    def __init__(self, prefixes: dict[str, str]) -> None:
        self.prefixes = prefixes
        self.tags: dict[str, Value | list[Value]] = {}

    def prefix(self, uri: str) -> str:
        return _PREFIX_OF_URI.get(uri) or self.prefixes.get(uri) or "unknown"

    def emit(self, uri: str, path: list[str], text: str, lang: str | None, in_list: bool) -> None:
        prefix = self.prefix(uri)
        known = _KNOWN_PROPERTIES.get((prefix, path[0])) if len(path) == 1 else None
        if known is not None:
            name, kind = known
            if kind == "r":
                text = _convert_rational(text) or text
            elif kind == "d":
                text = _convert_date(text, unsure=False)
            value: Value = json_value(text)
        else:
            head = path[0][:1].upper() + path[0][1:]
            name = tag_name(head + "".join(part[:1].upper() + part[1:] for part in path[1:]))
            rational = _convert_rational(text)
            text = rational if rational is not None else _convert_date(text, unsure=True)
            size = len(text.encode("utf-8"))
            value = binary_placeholder(size) if size > 65536 else json_value(text)
        if lang is not None and lang.lower() != "x-default":
            name = f"{name}-{standard_language(lang)}"
        key = f"XMP-{prefix}:{name}"
        previous = self.tags.get(key)
        if in_list and previous is not None:
            if isinstance(previous, list):
                previous.append(value)
            else:
                self.tags[key] = [previous, value]
        else:
            self.tags[key] = value

    def struct_fields(
        self, element: ElementTree.Element, uri: str, path: list[str], in_list: bool = False
    ) -> None:
        for attribute, text in element.attrib.items():
            attribute_uri, local = _split(attribute)
            if attribute_uri in ("", _RDF, _XML):
                continue
            self.emit(uri, [*path, local], text, None, in_list=in_list)
        for child in element:
            self.property(child, uri, path, in_list)

    def property(
        self,
        element: ElementTree.Element,
        top_uri: str | None,
        path: list[str],
        in_list: bool = False,
    ) -> None:
        uri, local = _split(element.tag)
        if uri in (_RDF, _XML) and top_uri is None:
            return
        uri = top_uri or uri
        path = [*path, local]
        lang = element.get(f"{{{_XML}}}lang")
        resource = element.get(f"{{{_RDF}}}resource")
        if resource is not None:
            self.emit(uri, path, resource, lang, in_list=in_list)
            return
        children = list(element)
        if element.get(f"{{{_RDF}}}parseType") == "Resource":
            self.struct_fields(element, uri, path, in_list)
            return
        if not children:
            if any(_split(name)[0] not in ("", _RDF, _XML) for name in element.attrib):
                self.struct_fields(element, uri, path, in_list)
            else:
                self.emit(uri, path, element.text or "", lang, in_list=in_list)
            return
        container = children[0]
        if container.tag in _LIST_TYPES:
            for item in container:
                if item.tag != f"{{{_RDF}}}li":
                    continue
                item_children = list(item)
                if item_children or item.get(f"{{{_RDF}}}parseType") == "Resource":
                    target = (
                        item_children[0]
                        if len(item_children) == 1
                        and item_children[0].tag == f"{{{_RDF}}}Description"
                        else item
                    )
                    self.struct_fields(target, uri, path, in_list=True)
                    continue
                self.emit(uri, path, item.text or "", item.get(f"{{{_XML}}}lang"), in_list=True)
            return
        if container.tag == f"{{{_RDF}}}Description":
            self.struct_fields(container, uri, path, in_list)
            return
        self.struct_fields(element, uri, path, in_list)


def read_xmp(packet: bytes) -> tuple[dict[str, Value | list[Value]], list[str]]:
    """Tags ``XMP-<prefix>:<Name>`` from one XMP packet, plus warnings; never raises."""
    if len(packet) > MAX_XMP_BYTES:
        return {}, [f"XMP packet larger than {MAX_XMP_BYTES} bytes ignored"]
    if b"<!DOCTYPE" in packet or b"<!ENTITY" in packet:
        return {}, ["XMP packet with a DOCTYPE ignored"]
    end = packet.rfind(b">")
    if end < 0:
        return {}, ["Invalid XMP"]
    packet = packet[: end + 1]
    start = packet.find(b"<")
    packet = packet[start:]
    try:
        packet.decode("utf-8")
    except UnicodeDecodeError:
        packet = fix_utf8(packet).encode("utf-8")
    prefixes: dict[str, str] = {}
    try:
        events = ElementTree.iterparse(io.BytesIO(packet), events=("start-ns",))
        for _event, namespace in events:
            prefix, uri = namespace
            prefixes.setdefault(uri, prefix)
        root = events.root  # type: ignore[attr-defined]
    except ElementTree.ParseError as error:
        return {}, [f"Invalid XMP: {error}"]
    collector = _Collector(prefixes)
    if root.tag == f"{{{_X}}}xmpmeta" and root.get(f"{{{_X}}}xmptk") is not None:
        collector.tags["XMP-x:XMPToolkit"] = json_value(root.get(f"{{{_X}}}xmptk") or "")
    for rdf in root.iter(f"{{{_RDF}}}RDF"):
        for description in rdf:
            if description.tag != f"{{{_RDF}}}Description":
                continue
            for attribute, text in description.attrib.items():
                uri, local = _split(attribute)
                if uri in ("", _RDF, _XML):
                    continue
                collector.emit(uri, [local], text, None, in_list=False)
            for child in description:
                collector.property(child, None, [])
    return collector.tags, []
