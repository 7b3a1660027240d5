# Deployment files (compose, k8s, Dockerfile, topics.conf) parsed and checked for the keys
# they must have; and BUILD_TESTING=OFF configures no test (tests/scripts/check_deploy.py).
add_test(NAME unit_deploy_files
  COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/scripts/check_deploy.py --cmake)
set_tests_properties(unit_deploy_files PROPERTIES LABELS unit TIMEOUT 120)
