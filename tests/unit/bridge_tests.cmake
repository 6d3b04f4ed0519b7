# Unit tests of libvmi_bridge. include()d from tests/CMakeLists.txt; paths are relative to
# this file so the include site does not matter.
find_package(GTest REQUIRED)
include(GoogleTest)

add_executable(bridge_tests
  ${CMAKE_CURRENT_LIST_DIR}/bridge_memory_test.cpp
  ${CMAKE_CURRENT_LIST_DIR}/bridge_page_walker_test.cpp
  ${CMAKE_CURRENT_LIST_DIR}/bridge_btf_profile_test.cpp
  ${CMAKE_CURRENT_LIST_DIR}/bridge_system_map_test.cpp
  ${CMAKE_CURRENT_LIST_DIR}/bridge_syscall_abi_test.cpp
  ${CMAKE_CURRENT_LIST_DIR}/bridge_kaslr_test.cpp
  ${CMAKE_CURRENT_LIST_DIR}/bridge_linux_model_test.cpp
  ${CMAKE_CURRENT_LIST_DIR}/bridge_kernel_discovery_test.cpp
  ${CMAKE_CURRENT_LIST_DIR}/bridge_elf_core_test.cpp
  ${CMAKE_CURRENT_LIST_DIR}/bridge_elf_core_writer_test.cpp
  ${CMAKE_CURRENT_LIST_DIR}/bridge_kallsyms_test.cpp
  ${CMAKE_CURRENT_LIST_DIR}/bridge_integrity_test.cpp
  ${CMAKE_CURRENT_LIST_DIR}/bridge_isf_profile_test.cpp
  ${CMAKE_CURRENT_LIST_DIR}/bridge_entity_id_test.cpp
  ${CMAKE_CURRENT_LIST_DIR}/bridge_inspect_tool_test.cpp
)
target_include_directories(bridge_tests PRIVATE ${CMAKE_CURRENT_LIST_DIR})
# libbpf directly too: the BTF tests build synthetic BTF with libbpf's writer API.
target_link_libraries(bridge_tests PRIVATE vmi_bridge PkgConfig::LIBBPF nlohmann_json::nlohmann_json GTest::gtest_main)
# The real-kernel kallsyms test extracts the lab's vmlinuz with scripts/extract-vmlinux.sh.
target_compile_definitions(bridge_tests PRIVATE VMI_SOURCE_DIR="${CMAKE_CURRENT_LIST_DIR}/../.."
  VMI_INSPECT_BIN="$<TARGET_FILE:vminsight-inspect>")
# The inspect tests run the tool itself.
add_dependencies(bridge_tests vminsight-inspect)
gtest_discover_tests(bridge_tests)

# The LibVMI-compatible C API (libvminsight-vmi.so) against a synthetic snapshot.
add_executable(capi_tests ${CMAKE_CURRENT_LIST_DIR}/capi_test.cpp)
target_include_directories(capi_tests PRIVATE ${CMAKE_CURRENT_LIST_DIR})
target_link_libraries(capi_tests PRIVATE vminsight_vmi vmi_bridge PkgConfig::LIBBPF GTest::gtest_main)
gtest_discover_tests(capi_tests)
