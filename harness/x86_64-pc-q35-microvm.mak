# x86_64 without QEMU's default devices: only the machines that can host
# vmgenid. Used by harness/build.sh reduced.
CONFIG_I440FX=y
CONFIG_Q35=y
CONFIG_MICROVM=y
