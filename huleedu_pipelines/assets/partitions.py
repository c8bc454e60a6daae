"""The daily partitions shared by the inference and monitoring groups.

A partition is one UTC calendar day (`YYYY-MM-DD`): the essays submitted or updated that day.
"""

import dagster as dg

DAILY_START_DATE = "2024-01-01"

daily_partitions = dg.DailyPartitionsDefinition(start_date=DAILY_START_DATE, timezone="UTC")
