"""The runs folder as a whole: listing and deleting runs, training jobs that
outlive the page, the TensorBoard server, and reading event files."""
