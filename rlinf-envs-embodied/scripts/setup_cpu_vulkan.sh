#!/usr/bin/env bash
# Software Vulkan (Mesa 25 lavapipe from Debian bookworm-backports) for ManiSkill3 / SAPIEN on a CPU-only
# Debian 12 machine, unpacked into a private folder: no root, no change to the system's apt config.
#
#   eval "$(rlinf-envs-embodied/scripts/setup_cpu_vulkan.sh [DIR])"     # DIR default: ~/.cache/rlinf/vulkan
#
# prints the `export` lines (VK_ICD_FILENAMES, LD_LIBRARY_PATH, XDG_RUNTIME_DIR) to use it; progress goes
# to stderr. Debian 12's own lavapipe (Mesa 22.3) is refused by SAPIEN ("Failed to find a supported
# physical device": it lacks VK_KHR_external_semaphore_fd). Idempotent: a finished DIR is reused.
set -euo pipefail

dir="${1:-${HOME}/.cache/rlinf/vulkan}"
root="${dir}/root"
icd="${dir}/lvp_icd.json"

if [[ ! -f "${icd}" ]]; then
  command -v apt-get >/dev/null || { echo "setup_cpu_vulkan.sh: needs Debian's apt-get (Debian 12 / bookworm)" >&2; exit 1; }
  mkdir -p "${dir}/apt/lists/partial" "${dir}/debs" "${root}"
  cat > "${dir}/apt/sources.list" <<'EOF'
deb http://deb.debian.org/debian bookworm-backports main
EOF
  apt_opts=(-o "Dir::Etc::SourceList=${dir}/apt/sources.list" -o "Dir::Etc::SourceParts=/nonexistent"
            -o "Dir::State::Lists=${dir}/apt/lists" -o "Dir::Cache=${dir}/apt/cache" -o "APT::Sandbox::User=root"
            -o "Debug::NoLocking=1")
  echo "setup_cpu_vulkan.sh: fetching Mesa from bookworm-backports into ${dir}" >&2
  apt-get "${apt_opts[@]}" update >&2
  (cd "${dir}/debs" && apt-get "${apt_opts[@]}" download \
      mesa-vulkan-drivers/bookworm-backports libdrm2/bookworm-backports \
      libdrm-amdgpu1/bookworm-backports libdrm-common/bookworm-backports >&2)
  for deb in "${dir}"/debs/*.deb; do dpkg -x "${deb}" "${root}"; done
  src="$(find "${root}" -name 'lvp_icd*.json' | head -n 1)"
  [[ -n "${src}" ]] || { echo "setup_cpu_vulkan.sh: no lvp_icd*.json in the unpacked packages" >&2; exit 1; }
  lib="$(find "${root}" -name 'libvulkan_lvp.so' | head -n 1)"
  # the ICD names its library by an absolute system path: point it at the private copy
  sed "s#\"library_path\": *\"[^\"]*\"#\"library_path\": \"${lib}\"#" "${src}" > "${icd}"
fi

libdir="$(dirname "$(find "${root}" -name 'libvulkan_lvp.so' | head -n 1)")"
echo "export VK_ICD_FILENAMES='${icd}'"
echo "export LD_LIBRARY_PATH='${libdir}'\${LD_LIBRARY_PATH:+:\${LD_LIBRARY_PATH}}"
echo "export XDG_RUNTIME_DIR=\${XDG_RUNTIME_DIR:-/tmp}"
