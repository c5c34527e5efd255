"""Classification data: image folders, MedMNIST .npz, label CSVs, synthetic shapes.

`sources.prepared(name, data_dir, raw_dir, **options)` writes a dataset once as
array_record; `pipeline` turns its splits into grain batches.
"""
