"""What every job shares: settings, the Spark session, the output root's lock and tables."""
