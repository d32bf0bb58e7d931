/* The printable brief of a case (bản tóm tắt vụ việc): its "In" button opens the browser's print dialog. */
'use strict';

(function () {
  const button = document.querySelector('[data-print]');
  if (button) button.addEventListener('click', () => window.print());
})();
