# Run by `cmake --install` (install(SCRIPT) in packaging/CMakeLists.txt), where
# CMAKE_INSTALL_PREFIX is the install-time prefix and DESTDIR is honoured by file(INSTALL).
# Everything installed here is recorded in install_manifest.txt like the rest.

# The systemd unit, naming vminsightd where this install puts it.
file(READ "${VMI_PACKAGING_DIR}/systemd/vminsightd.service" unit)
string(REPLACE "/usr/sbin/vminsightd" "${CMAKE_INSTALL_PREFIX}/${VMI_SBINDIR}/vminsightd"
       unit "${unit}")
file(WRITE "${VMI_STAGE_DIR}/vminsightd.service" "${unit}")
file(INSTALL DESTINATION "${CMAKE_INSTALL_PREFIX}/lib/systemd/system" TYPE FILE
     FILES "${VMI_STAGE_DIR}/vminsightd.service")

# Configuration: installed when absent, kept (and left out of the manifest) when present.
# A macro: file(INSTALL) records into the manifest in the caller's scope.
macro(vmi_install_config src dir name)
  if(EXISTS "$ENV{DESTDIR}${dir}/${name}")
    message(STATUS "Keeping: $ENV{DESTDIR}${dir}/${name} (exists; the new default is ${src})")
  else()
    file(INSTALL DESTINATION "${dir}" TYPE FILE FILES "${src}" RENAME "${name}")
  endif()
endmacro()

vmi_install_config("${VMI_PACKAGING_DIR}/config/feed.json" "${VMI_SYSCONFDIR}/vminsight" feed.json)
vmi_install_config("${VMI_PROJECT_DIR}/policies/default.yaml" "${VMI_SYSCONFDIR}/vminsight/policies"
                   default.yaml)
vmi_install_config("${VMI_PACKAGING_DIR}/config/vminsightd.default" "${VMI_SYSCONFDIR}/default"
                   vminsightd)
