# The client examples (examples/http, examples/node, examples/python) run against the local
# stack through a bw-api and a usage worker of this build; their output is asserted.
if(TARGET bw-api AND TARGET bw-usage-worker)
  add_test(NAME integration_examples
    COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/examples.sh ${PROJECT_SOURCE_DIR}
      $<TARGET_FILE:bw-api> $<TARGET_FILE:bw-usage-worker>)
  set_tests_properties(integration_examples PROPERTIES LABELS integration TIMEOUT 180)
endif()
