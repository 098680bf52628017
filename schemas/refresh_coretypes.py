"""Re-extract NeuroML2CoreTypes/*.xml from the jNeuroML jar shipped by pyNeuroML.

Usage: python schemas/refresh_coretypes.py   (needs `pip install pyNeuroML==1.3.22`)
"""
import pathlib
import zipfile

import pyneuroml

jar = next((pathlib.Path(pyneuroml.__file__).parent / "lib").glob("jNeuroML-*-jar-with-dependencies.jar"))
dest = pathlib.Path(__file__).resolve().parent.parent / "nmlsim" / "coretypes" / "NeuroML2CoreTypes"
dest.mkdir(parents=True, exist_ok=True)
with zipfile.ZipFile(jar) as z:
    for name in z.namelist():
        if name.startswith("NeuroML2CoreTypes/") and name.endswith(".xml"):
            (dest / pathlib.Path(name).name).write_bytes(z.read(name))
            print("extracted", name)
