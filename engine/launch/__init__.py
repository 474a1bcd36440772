"""Process launch: the launcher's environment, process groups, this rank's Layout, seeds."""
