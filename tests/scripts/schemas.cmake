# The JSON Schemas in schemas/ and the fixtures the C parsers are tested with must agree.
add_test(NAME unit_schemas_fixtures
  COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/scripts/check_schemas.py)
set_tests_properties(unit_schemas_fixtures PROPERTIES LABELS unit TIMEOUT 60)
