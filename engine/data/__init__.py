"""Photos in: decoding one file safely, scanning a folder-per-class tree, the stable
split, and the ways a dataset gets here (a local folder, a zip, the flower_photos
download, the generated demo)."""
