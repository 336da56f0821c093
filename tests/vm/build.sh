#!/usr/bin/env bash
# Build the Debian 12 guest that tests/vm/run.py boots: systemd as PID 1, cgroup v2 only (the kernel command
# line sets systemd.unified_cgroup_hierarchy=1), the packages of tests/vm/packages.txt, a user `lk` whose
# logins get a systemd user manager, and the test suite's Python packages in /opt/labkit-venv.
#
# The image is cached in $LABKIT_VM_CACHE (default ~/.cache/labkit-vm) under a hash of this script, the
# package list and pyproject's dependencies: a second run with none of them changed reuses it.
# As root, the host tools it needs (mmdebstrap, qemu-system-x86, e2fsprogs, openssh-client) are installed
# with apt-get when missing. Prints the image's folder on its last line.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
cache="${LABKIT_VM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/labkit-vm}"
size="${LABKIT_VM_DISK:-8G}"
suite=bookworm
mirror="${LABKIT_VM_MIRROR:-http://deb.debian.org/debian}"

# The suite's Python packages (pyproject's notebook and test extras, and the base dependencies), baked
# into the image so the guest needs no network; setuptools lets the guest install the checkout editable.
pydeps="$(python3 - "$repo/pyproject.toml" <<'EOF'
import sys, tomllib
p = tomllib.load(open(sys.argv[1], "rb"))["project"]
extras = p["optional-dependencies"]
print(" ".join(repr(d) for d in [*p["dependencies"], *extras["notebook"], *extras["test"], "setuptools>=77", "wheel"]))
EOF
)"
key="$( (cat "$here/build.sh" "$here/packages.txt"; echo "$pydeps") | sha256sum | cut -c1-16)"
out="$cache/$key"
if [ -f "$out/ready" ]; then
  echo "labkit-vm: image cached in $out" >&2
  echo "$out"
  exit 0
fi

need=()
command -v mmdebstrap >/dev/null || need+=(mmdebstrap)
command -v qemu-system-x86_64 >/dev/null || need+=(qemu-system-x86)
command -v mke2fs >/dev/null || need+=(e2fsprogs)
command -v ssh >/dev/null || need+=(openssh-client)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "labkit-vm: missing ${need[*]}; as root: apt-get install ${need[*]}" >&2
    exit 2
  fi
  apt-get update -q >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need[@]}" >&2
fi
if [ "$(id -u)" != 0 ]; then
  echo "labkit-vm: building the image needs root (mmdebstrap --mode=root, mke2fs -d keeps the owners)" >&2
  exit 2
fi

mkdir -p "$cache"
work="$(mktemp -d "$cache/build-XXXXXX")"
trap 'rm -rf "$work"' EXIT
start=$(date +%s)

packages="$(sed -e 's/#.*//' "$here/packages.txt" | tr -s ' \n' ',' | sed -e 's/^,//' -e 's/,$//')"
cabundle="${PIP_CERT:-${SSL_CERT_FILE:-/etc/ssl/certs/ca-certificates.crt}}"
ssh-keygen -q -t ed25519 -N '' -C labkit-vm -f "$work/id_ed25519"

cat > "$work/customize.sh" <<EOF
#!/bin/sh
# Runs on the host with the guest's root in \$1 (mmdebstrap's customize hook).
set -eu
r="\$1"
printf 'LABEL=labkit-root / ext4 defaults,errors=remount-ro 0 1\n' > "\$r/etc/fstab"
# QEMU's user network has fixed addresses (the guest 10.0.2.15, the gateway 10.0.2.2, DNS 10.0.2.3): one
# oneshot unit sets them. systemd-networkd, emulated on a busy host, was seen taking minutes to start.
cat > "\$r/etc/systemd/system/labkit-vm-net.service" <<'UNIT'
[Unit]
Description=QEMU user network: 10.0.2.15/24 via 10.0.2.2
Before=network.target ssh.service
Wants=network.target

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/bin/sh -c 'ip link set lo up; for d in /sys/class/net/*; do n=\$\${d##*/}; [ "\$\$n" = lo ] && continue; ip link set "\$\$n" up; ip addr add 10.0.2.15/24 dev "\$\$n"; ip route add default via 10.0.2.2 dev "\$\$n"; break; done'

[Install]
WantedBy=multi-user.target
UNIT
chroot "\$r" systemctl enable labkit-vm-net.service ssh
chroot "\$r" systemctl mask apt-daily.timer apt-daily-upgrade.timer man-db.timer e2scrub_all.timer fstrim.timer
# Root and the user lk log in with the key beside the image; lk's user manager starts at boot (linger).
chroot "\$r" useradd -m -s /bin/bash -u 1000 lk
for home in /root /home/lk; do
  mkdir -p "\$r\$home/.ssh"
  cp "$work/id_ed25519.pub" "\$r\$home/.ssh/authorized_keys"
done
chroot "\$r" chown -R lk:lk /home/lk/.ssh
mkdir -p "\$r/var/lib/systemd/linger" && touch "\$r/var/lib/systemd/linger/lk"
printf 'UseDNS no\n' > "\$r/etc/ssh/sshd_config.d/labkit-vm.conf"
chroot "\$r" python3 -m venv /opt/labkit-venv
# pip trusts what the host trusts while it builds (a host behind a TLS-inspecting proxy adds its CA there);
# the bundle is not left in the image.
cp "$cabundle" "\$r/tmp/host-ca.crt"
chroot "\$r" env -u PIP_FIND_LINKS PIP_CERT=/tmp/host-ca.crt REQUESTS_CA_BUNDLE=/tmp/host-ca.crt SSL_CERT_FILE=/tmp/host-ca.crt \\
  /opt/labkit-venv/bin/pip install -q --no-cache-dir $pydeps
rm -f "\$r/tmp/host-ca.crt"
chroot "\$r" /opt/labkit-venv/bin/python -m compileall -q /opt/labkit-venv >/dev/null 2>&1 || true
rm -rf "\$r/var/cache/apt/archives/"*.deb "\$r/var/lib/apt/lists/"*
EOF
chmod +x "$work/customize.sh"

echo "labkit-vm: building the Debian 12 image in $work (mmdebstrap, $mirror)" >&2
mmdebstrap --mode=root --variant=apt --include="$packages" \
  --customize-hook="$work/customize.sh \"\$1\"" \
  "$suite" "$work/root" "$mirror" >&2

# mmdebstrap's cleanup removes the hostname and resolv.conf it copied in from the host: the guest's go in after.
echo labkit-vm > "$work/root/etc/hostname"
printf '127.0.1.1 labkit-vm\n' >> "$work/root/etc/hosts"
printf 'nameserver 10.0.2.3\n' > "$work/root/etc/resolv.conf"   # QEMU user networking's DNS
mkdir -p "$work/image"
cp "$work/root/boot/"vmlinuz-* "$work/image/vmlinuz"
cp "$work/root/boot/"initrd.img-* "$work/image/initrd.img"
chmod 0644 "$work/image/vmlinuz" "$work/image/initrd.img"
mke2fs -q -t ext4 -L labkit-root -d "$work/root" "$work/image/disk.img" "$size" >&2
mv "$work/id_ed25519" "$work/id_ed25519.pub" "$work/image/"
echo "built $(date -u +%FT%TZ) in $(( $(date +%s) - start )) s" > "$work/image/ready"

rm -rf "$out"
mv "$work/image" "$out"
echo "labkit-vm: image built in $(( $(date +%s) - start )) s: $out" >&2
echo "$out"
