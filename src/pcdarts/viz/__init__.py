"""Pictures and pages: cell diagrams, alpha/beta heatmaps, curves, study plots, the HTML report."""
