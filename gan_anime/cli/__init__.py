"""The command line: ``python -m gan_anime`` / ``gan-anime``.  The library never imports this package.

flags.py defines every flag once; main.py turns them into one Config and calls the library;
presets.py holds the TRAIN presets as data; media.py writes media/.
"""
