// Draw every figure embedded by workbench.report (JSON in <script class="wb-figure-data">).
document.addEventListener("DOMContentLoaded", function () {
  document.querySelectorAll("script.wb-figure-data").forEach(function (el) {
    var figure = JSON.parse(el.textContent);
    var layout = Object.assign({}, figure.layout || {}, { autosize: true });
    Plotly.newPlot(el.dataset.target, figure.data, layout, { responsive: true, displaylogo: false });
  });
});
