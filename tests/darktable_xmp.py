"""A darktable-style sidecar (history, keywords, darktable properties) that tests write, so
that the sidecar checks run without the real samples."""

MINIMAL_DARKTABLE_XMP = """<?xml version="1.0" encoding="UTF-8"?>
<x:xmpmeta xmlns:x="adobe:ns:meta/" x:xmptk="XMP Core 4.4.0-Exiv2">
 <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
  <rdf:Description rdf:about=""
    xmlns:xmp="http://ns.adobe.com/xap/1.0/"
    xmlns:xmpMM="http://ns.adobe.com/xap/1.0/mm/"
    xmlns:dc="http://purl.org/dc/elements/1.1/"
    xmlns:darktable="http://darktable.sf.net/"
   xmp:Rating="2"
   xmpMM:DerivedFrom="{name}"
   darktable:import_timestamp="63840000000000000"
   darktable:change_timestamp="63840000000000001"
   darktable:xmp_version="5"
   darktable:raw_params="0"
   darktable:auto_presets_applied="1"
   darktable:history_end="2"
   darktable:iop_order_version="4">
   <dc:subject>
    <rdf:Bag>
     <rdf:li>my own keyword</rdf:li>
    </rdf:Bag>
   </dc:subject>
   <darktable:history>
    <rdf:Seq>
     <rdf:li darktable:num="0" darktable:operation="exposure" darktable:enabled="1"
      darktable:modversion="6" darktable:params="00000000000080b9cdcc4c3e"
      darktable:multi_name="" darktable:multi_priority="0" darktable:blendop_version="13"
      darktable:blendop_params="gz11eJxjYGBgYAFiCQYYOOHEgAYY0QVwggZ7CB6pfOx8ECAPAHg4"/>
     <rdf:li darktable:num="1" darktable:operation="filmicrgb" darktable:enabled="1"
      darktable:modversion="6" darktable:params="0000803f"
      darktable:multi_name="" darktable:multi_priority="0" darktable:blendop_version="13"
      darktable:blendop_params="gz11eJxjYGBgYAFiCQYYOOHEgAYY0QVwggZ7CB6pfOx8ECAPAHg4"/>
    </rdf:Seq>
   </darktable:history>
  </rdf:Description>
 </rdf:RDF>
</x:xmpmeta>
"""
