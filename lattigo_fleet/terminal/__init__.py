"""What the commands and the usage report print to a terminal: aligned tables and progress bars.

Below both (the usage package renders tables and shows progress; the commands do too), so that neither
imports the other for them.
"""
