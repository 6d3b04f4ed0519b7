# Unit tests of the policy engine (policy/). include()d from tests/CMakeLists.txt; paths are
# relative to this file so the include site does not matter.
find_package(GTest REQUIRED)
include(GoogleTest)

add_executable(policy_tests
  ${CMAKE_CURRENT_LIST_DIR}/policy_language_test.cpp
  ${CMAKE_CURRENT_LIST_DIR}/policy_errors_test.cpp
  ${CMAKE_CURRENT_LIST_DIR}/policy_default_rules_test.cpp
  ${CMAKE_CURRENT_LIST_DIR}/policy_enforce_test.cpp
)
# policy/: white-box tests include "src/compile.hpp".
target_include_directories(policy_tests PRIVATE ${CMAKE_CURRENT_LIST_DIR} ${CMAKE_CURRENT_LIST_DIR}/../../policy)
target_compile_definitions(policy_tests PRIVATE
  VMI_POLICIES_DIR="${CMAKE_CURRENT_LIST_DIR}/../../policies")
target_link_libraries(policy_tests PRIVATE vmi_policy GTest::gtest_main)
# Test names are prefixed Policy so `ctest -R Policy` selects them.
gtest_discover_tests(policy_tests)
