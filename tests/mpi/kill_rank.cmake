add_test(NAME kill_rank
  COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/mpi/kill_rank_test.sh $<TARGET_FILE:tessera> ${MPIEXEC_EXECUTABLE}
          ${PROJECT_SOURCE_DIR}/configs)
set_tests_properties(kill_rank PROPERTIES ENVIRONMENT "${TESSERA_MPI_TEST_ENV}" TIMEOUT 300 PROCESSORS 2
  LABELS mpi)
