"""Readers and writers of other tools' formats: xarray/NetCDF/Zarr lat/lon fields, The Well
and PDEBench HDF5 files. Each reader streams (one frame or trajectory in memory at a time)
and writes the dataset layout of :mod:`geo_neuralop.data.generate`, which the trainer
takes; each check names the file, the variable and the expected shape."""

from geo_neuralop.data.importers.dataset_writer import write_dataset
from geo_neuralop.data.importers.latlon_grid import (
    LATITUDE_RULES,
    LatLonGrid,
    detect_latlon_grid,
    latitude_rule,
)
from geo_neuralop.data.importers.pdebench import (
    PDEBENCH_LAYOUTS,
    import_pdebench,
    read_pdebench_file,
)
from geo_neuralop.data.importers.the_well import (
    export_well,
    import_well,
    read_well_file,
    well_files,
)
from geo_neuralop.data.importers.xarray_io import (
    XarrayFields,
    from_xarray,
    import_xarray,
    inspect_xarray,
    open_xarray,
    to_xarray,
    write_xarray,
)

__all__ = [
    "LATITUDE_RULES",
    "PDEBENCH_LAYOUTS",
    "LatLonGrid",
    "XarrayFields",
    "detect_latlon_grid",
    "export_well",
    "from_xarray",
    "import_pdebench",
    "import_well",
    "import_xarray",
    "inspect_xarray",
    "latitude_rule",
    "open_xarray",
    "read_pdebench_file",
    "read_well_file",
    "to_xarray",
    "well_files",
    "write_dataset",
    "write_xarray",
]
