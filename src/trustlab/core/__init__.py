"""The bottom layer every other package builds on: errors, files, progress bars, typed results,
views, batching, validation, statistics, formatting and plots. Imports no other trustlab package."""
