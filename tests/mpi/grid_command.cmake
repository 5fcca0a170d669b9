add_test(NAME grid_command_np8
  COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/mpi/grid_command_test.sh $<TARGET_FILE:tessera> ${MPIEXEC_EXECUTABLE}
          ${PROJECT_SOURCE_DIR}/configs)
set_tests_properties(grid_command_np8 PROPERTIES ENVIRONMENT "${TESSERA_MPI_TEST_ENV}" TIMEOUT 120 PROCESSORS 8
  LABELS mpi)
