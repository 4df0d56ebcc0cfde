"""An output root as the jobs use it: locked for one command, recovered after a kill."""
