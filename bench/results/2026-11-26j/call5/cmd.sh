# Call 5: the whole target table in one command with the final binaries (HOIST on, the forward's
# early stop), torch in the same call.
bash bench/gpu_run.sh targets 2>&1 | tail -40
