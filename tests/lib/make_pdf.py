#!/usr/bin/env python3
"""Writes small test PDFs by hand (no PDF library): the media tests' documents.

    make_pdf.py KIND OUT [JPEG]

KIND:
  doc        3 pages: US Letter with text, vector art (filled/stroked paths, Bezier curves) and the
             JPEG as an embedded photo (DCTDecode); A4 with text; a landscape page with /Rotate 90
  truncated  the doc cut in the middle of its first page's content
  encrypted  a document with a Standard-security /Encrypt dictionary and a user password
  pagebomb   20000 pages (distinct page objects sharing one content stream)
  hugepage   one page of 14400 x 14400 points (200 x 200 inches)
  fanout     one page drawing a form that draws itself-like children 2^40 times (CPU bomb)
  notpdf     plain text
"""
import struct
import sys
import zlib


def jpeg_size(data):
    i = 2
    while i < len(data):
        if data[i] != 0xFF:
            i += 1
            continue
        marker = data[i + 1]
        seglen = struct.unpack(">H", data[i + 2:i + 4])[0]
        if marker in (0xC0, 0xC1, 0xC2):
            h, w = struct.unpack(">HH", data[i + 5:i + 9])
            return w, h
        i += 2 + seglen
    raise ValueError("no SOF marker")


class Pdf:
    def __init__(self):
        self.objs = []

    def add(self, body):
        self.objs.append(body if isinstance(body, bytes) else body.encode("latin-1"))
        return len(self.objs)

    def stream(self, dict_entries, data):
        return self.add(b"<< " + dict_entries.encode() + b" /Length %d >>\nstream\n" % len(data)
                        + data + b"\nendstream")

    def write(self, root, extra_trailer=""):
        out = bytearray(b"%PDF-1.5\n%\xe2\xe3\xcf\xd3\n")
        offsets = []
        for i, body in enumerate(self.objs, 1):
            offsets.append(len(out))
            out += b"%d 0 obj\n" % i + body + b"\nendobj\n"
        xref = len(out)
        out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(self.objs) + 1)
        for off in offsets:
            out += b"%010d 00000 n \n" % off
        out += (b"trailer\n<< /Size %d /Root %d 0 R " % (len(self.objs) + 1, root)
                + extra_trailer.encode() + b">>\nstartxref\n%d\n%%%%EOF\n" % xref)
        return bytes(out)


def doc(jpeg):
    p = Pdf()
    font = p.add("<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    w, h = jpeg_size(jpeg)
    photo = p.stream("/Type /XObject /Subtype /Image /Width %d /Height %d /ColorSpace /DeviceRGB "
                     "/BitsPerComponent 8 /Filter /DCTDecode" % (w, h), jpeg)
    c1 = (b"BT /F1 28 Tf 72 700 Td (Quarterly report: page one) Tj ET\n"
          b"BT /F1 12 Tf 72 670 Td (Text, vector art and a photo, made by hand for tkr-embed.) Tj ET\n"
          b"0.1 0.3 0.8 rg 72 420 200 150 re f\n"
          b"0.9 0.2 0.1 RG 6 w 320 420 m 540 570 l S\n"
          b"0 0.6 0.2 rg 320 500 m 360 640 480 640 540 500 c f\n"
          b"q 227 0 0 149 72 200 cm /Im1 Do Q\n"
          b"BT /F1 10 Tf 72 180 Td (Figure 1: an embedded JPEG photo.) Tj ET\n")
    c2 = b"BT /F1 20 Tf 72 760 Td (Page two, A4: plain text) Tj ET\n0 0 0 RG 2 w 72 740 m 523 740 l S\n"
    c3 = b"BT /F1 36 Tf 72 300 Td (Page three, rotated) Tj ET\n0.5 g 100 100 300 100 re f\n"
    s1 = p.stream("/Filter /FlateDecode", zlib.compress(c1))
    s2 = p.stream("", c2)
    s3 = p.stream("", c3)
    pages_id = len(p.objs) + 4
    res = "<< /Font << /F1 %d 0 R >> /XObject << /Im1 %d 0 R >> >>" % (font, photo)
    p1 = p.add("<< /Type /Page /Parent %d 0 R /MediaBox [0 0 612 792] /Resources %s /Contents %d 0 R >>"
               % (pages_id, res, s1))
    p2 = p.add("<< /Type /Page /Parent %d 0 R /MediaBox [0 0 595.28 841.89] /Resources %s /Contents %d 0 R >>"
               % (pages_id, res, s2))
    p3 = p.add("<< /Type /Page /Parent %d 0 R /MediaBox [0 0 612 792] /Rotate 90 /Resources %s "
               "/Contents %d 0 R >>" % (pages_id, res, s3))
    pages = p.add("<< /Type /Pages /Kids [%d 0 R %d 0 R %d 0 R] /Count 3 >>" % (p1, p2, p3))
    assert pages == pages_id
    root = p.add("<< /Type /Catalog /Pages %d 0 R >>" % pages)
    return p.write(root)


def simple(media_box, content=b"BT /F1 24 Tf 72 72 Td (x) Tj ET", kids=1):
    # kids distinct page objects sharing one content stream; the page tree is object kids + 3
    p = Pdf()
    font = p.add("<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    s = p.stream("", content)
    tree = kids + 3
    pages = [p.add("<< /Type /Page /Parent %d 0 R /MediaBox %s /Resources << /Font << /F1 %d 0 R >> >> "
                   "/Contents %d 0 R >>" % (tree, media_box, font, s)) for _ in range(kids)]
    t = p.add("<< /Type /Pages /Kids [%s] /Count %d >>" % (" ".join("%d 0 R" % i for i in pages), kids))
    assert t == tree
    root = p.add("<< /Type /Catalog /Pages %d 0 R >>" % tree)
    return p, root


def fanout():
    # form k draws form k+1 twice; 40 levels -> 2^40 leaf draws
    p = Pdf()
    levels = 40
    first = 1
    for k in range(levels):
        if k == levels - 1:
            body = b"0 0 m 1 1 l S"
            p.stream("/Type /XObject /Subtype /Form /BBox [0 0 10 10]", body)
        else:
            body = b"/X Do /X Do"
            p.stream("/Type /XObject /Subtype /Form /BBox [0 0 10 10] /Resources << /XObject << /X %d 0 R >> >>"
                     % (first + k + 1), body)
    content = p.stream("", b"/X Do")
    page = p.add("<< /Type /Page /Parent %d 0 R /MediaBox [0 0 612 792] /Resources << /XObject << /X %d 0 R >> >> "
                 "/Contents %d 0 R >>" % (len(p.objs) + 2, first, content))
    pages = p.add("<< /Type /Pages /Kids [%d 0 R] /Count 1 >>" % page)
    root = p.add("<< /Type /Catalog /Pages %d 0 R >>" % pages)
    return p.write(root)


def main():
    kind, out = sys.argv[1], sys.argv[2]
    jpeg = open(sys.argv[3], "rb").read() if len(sys.argv) > 3 else None
    if kind == "doc":
        data = doc(jpeg)
    elif kind == "truncated":
        full = doc(jpeg)
        data = full[:len(full) // 3]
    elif kind == "encrypted":
        p, root = simple("[0 0 612 792]")
        enc = p.add("<< /Filter /Standard /V 1 /R 2 /Length 40 /P -4 /O <%s> /U <%s> >>"
                    % ("11" * 32, "22" * 32))
        data = p.write(root, "/Encrypt %d 0 R /ID [<%s> <%s>] " % (enc, "33" * 16, "33" * 16))
    elif kind == "pagebomb":
        p, root = simple("[0 0 612 792]", kids=20000)
        data = p.write(root)
    elif kind == "hugepage":
        p, root = simple("[0 0 14400 14400]")
        data = p.write(root)
    elif kind == "fanout":
        data = fanout()
    elif kind == "notpdf":
        data = b"this is not a PDF at all\n" * 10
    else:
        raise SystemExit("unknown kind " + kind)
    open(out, "wb").write(data)


if __name__ == "__main__":
    main()
