add_test(NAME train_command_dp
  COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/mpi/train_command_test.sh $<TARGET_FILE:tessera> ${MPIEXEC_EXECUTABLE}
          ${PROJECT_SOURCE_DIR}/configs)
set_tests_properties(train_command_dp PROPERTIES ENVIRONMENT "${TESSERA_MPI_TEST_ENV}" TIMEOUT 300 PROCESSORS 4
  LABELS mpi)
