"""Event file containers: Prophesee RAW (EVT 2.0/2.1/3.0), Prophesee HDF5 (ECF), NPZ and CSV."""
