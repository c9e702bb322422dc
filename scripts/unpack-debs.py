#!/usr/bin/env python3
"""Unpacks Debian packages' shared libraries into one folder, as `dpkg -x`
would, without dpkg, ar or root (the GPU machines have none of our Debian
libraries, and may lack dpkg): a .deb is an ar archive whose data.tar.* holds
the files. Keeps symbolic links (libfoo.so.0 -> libfoo.so.0.1.2).

    python3 scripts/unpack-debs.py OUT_DIR file.deb...
"""
import io
import os
import sys
import tarfile


def ar_members(blob):
    if blob[:8] != b"!<arch>\n":
        raise SystemExit("not a .deb (ar) archive")
    pos = 8
    while pos + 60 <= len(blob):
        name = blob[pos:pos + 16].decode().strip().rstrip("/")
        size = int(blob[pos + 48:pos + 58].decode().strip())
        yield name, blob[pos + 60:pos + 60 + size]
        pos += 60 + size + (size & 1)


def main():
    out, debs = sys.argv[1], sys.argv[2:]
    os.makedirs(out, exist_ok=True)
    for deb in debs:
        data = next((d for n, d in ar_members(open(deb, "rb").read()) if n.startswith("data.tar")), None)
        if data is None:
            raise SystemExit(f"{deb}: no data.tar member")
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:  # xz and gz are in the standard library
            for m in tar.getmembers():
                base = os.path.basename(m.name)
                if ".so" not in base or m.isdir():
                    continue
                dst = os.path.join(out, base)
                if os.path.lexists(dst):
                    os.remove(dst)
                if m.issym():
                    os.symlink(os.path.basename(m.linkname), dst)
                elif m.isfile():
                    with open(dst, "wb") as f:
                        f.write(tar.extractfile(m).read())
                    os.chmod(dst, 0o755)
        print(f"unpacked {os.path.basename(deb)}")


if __name__ == "__main__":
    main()
