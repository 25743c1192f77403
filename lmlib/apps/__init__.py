"""Front-ends over `lmlib.generate`: the ipywidgets panel and the Flask web app (with its static page)."""
